"""The portal in real headless Chromium (Debian's package, driven by Playwright) against the
local runner: sign in, create and revoke a key, see the usage chart after calls.

Every request the page makes is checked to stay on the runner's origin. With
``AIGW_UPDATE_SCREENSHOTS=1`` the screenshots are written to docs/screenshots/ for the README.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import Runner

pytestmark = pytest.mark.e2e

TEAM = "portal-e2e"

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect  # noqa: E402

from tests.helpers.browser import shot as _shot  # noqa: E402
from tests.helpers.browser import sign_in as _sign_in  # noqa: E402


@pytest.fixture(scope="module")
def team_key(runner: Runner) -> str:
    admin = httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {runner.admin_key}"})
    assert admin.post("/admin/teams", json={"team_id": TEAM, "name": "Portal E2E"}).status_code == 201
    created = admin.post(f"/admin/teams/{TEAM}/keys", json={"name": "portal owner"})
    assert created.status_code == 201
    return str(created.json()["secret"])


def test_sign_in_keeps_the_key_in_session_storage_only(
    page: Page, runner: Runner, team_key: str, tmp_path: Path
) -> None:
    page.goto(runner.base_url + "/portal")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    _shot(page, "sign-in", tmp_path)
    page.get_by_label("API key").fill("sk-aigw-not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-error")).to_have_text("Invalid API key")

    page.get_by_label("API key").fill(team_key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("Portal E2E")
    assert page.evaluate("sessionStorage.getItem('aigw.apiKey')") == team_key
    assert page.evaluate("document.cookie") == ""
    assert team_key not in page.url
    # Every form control has an accessible name.
    unnamed = page.evaluate(
        """[...document.querySelectorAll('input, select, button')]
             .filter(e => !e.closest('[hidden]'))
             .filter(e => !(e.labels && e.labels.length))
             .filter(e => !e.getAttribute('aria-label') && !e.textContent.trim())
             .map(e => e.outerHTML)"""
    )
    assert unnamed == []

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('aigw.apiKey')") is None


def test_create_a_key_see_it_once_then_revoke_it(
    page: Page, runner: Runner, team_key: str, tmp_path: Path
) -> None:
    _sign_in(page, runner, team_key)
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()
    page.get_by_label("Name").fill("browser-made")
    page.get_by_label("Expires").select_option("30")
    page.get_by_role("button", name="Create key").click()
    secret_box = page.get_by_label("New API key")
    expect(secret_box).to_be_visible()
    secret = secret_box.input_value()
    assert secret.startswith("sk-aigw-")
    row = page.locator("#key-list tr", has_text="browser-made")
    expect(row).to_contain_text("active")
    _shot(page, "keys", tmp_path, mask=[secret_box])

    client = openai.OpenAI(api_key=secret, base_url=runner.base_url + "/v1", max_retries=0)
    hello = [{"role": "user", "content": "made in the portal"}]
    assert client.chat.completions.create(model="mock/echo", messages=hello).choices  # type: ignore[arg-type]

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Revoke key browser-made").click()
    expect(row).to_contain_text("revoked")
    # Gone from the page after a reload too: the secret is never shown again.
    page.reload()
    expect(page.locator("section.page[data-ready=true]")).to_be_visible()
    assert secret not in page.content()
    with pytest.raises(openai.AuthenticationError) as refused:
        client.chat.completions.create(model="mock/echo", messages=hello)  # type: ignore[arg-type]
    assert refused.value.code == "revoked_api_key"


def test_usage_chart_and_csv_after_calls(page: Page, runner: Runner, team_key: str, tmp_path: Path) -> None:
    client = openai.OpenAI(api_key=team_key, base_url=runner.base_url + "/v1", max_retries=0)
    for text in ("first call", "second call, a little longer", "third"):
        client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": text}])
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    report = runner.settled_report(team_key, TEAM, at_least=4, group_by="day")
    calls = report["totals"]["calls"]
    assert calls >= 4

    _sign_in(page, runner, team_key)
    page.get_by_role("link", name="Usage and cost").click()
    expect(page.locator("section.page[data-page=usage][data-ready=true]")).to_be_visible()
    expect(page.locator("[data-total=calls]")).to_have_text(str(calls))
    cost_chart = page.locator("figure[data-chart=cost-per-day]")
    bars = cost_chart.locator("svg rect.series-a")
    expect(bars).to_have_count(30)
    heights = [float(bars.nth(i).get_attribute("height") or 0) for i in range(30)]
    assert heights[-1] > 0, "today's bar shows today's cost"
    assert all(h == 0 for h in heights[:-1])
    model_chart = page.locator("figure[data-chart=cost-per-model]")
    by_model = httpx.get(
        runner.base_url + "/reports/usage",
        params={"group_by": "model"},
        headers={"Authorization": f"Bearer {team_key}"},
    ).json()["rows"]
    assert {r["group"] for r in by_model} == {"mock/echo", "openai/gpt-4o-mini"}
    expect(model_chart.locator("svg text.ylabel")).to_have_text([r["group"] for r in by_model])
    # Every label of every chart fits in its chart (no "16 cal" cut at the edge), also with the
    # long amounts and counts of a busier team than this one.
    cut = page.evaluate(
        """() => {
          const { hbars, bars } = window.aigw.charts;
          const busy = [
            hbars({ name: "busy-models", title: "t", columns: [], rows: [], points: [
              { label: "openai/gpt-4o-mini", value: 9, display: "$12,345.678901 · 16,384 calls" },
              { label: "mock/echo", value: 1, display: "$0.01 · 16 calls" } ] }),
            bars({ name: "busy-days", title: "t", columns: [], rows: [], axis: (v) => "$" + v.toFixed(6),
              points: [{ label: "2026-11-16", value: 12345.678901, display: "x" }] }),
          ];
          busy.forEach((figure) => document.querySelector("main").append(figure));
          const found = [...document.querySelectorAll("figure[data-chart] svg")].flatMap((svg) => {
            const width = svg.viewBox.baseVal.width;
            return [...svg.querySelectorAll("text")]
              .filter((t) => { const b = t.getBBox(); return b.x < 0 || b.x + b.width > width + 0.5; })
              .map((t) => t.textContent);
          });
          busy.forEach((figure) => figure.remove());
          return found;
        }"""
    )
    assert cut == []
    _shot(page, "usage", tmp_path)
    # The table alternative carries the same numbers as the API.
    cost_chart.get_by_text("Show as table").click()
    today = report["rows"][-1]
    expect(cost_chart.locator("tbody tr").last).to_contain_text(today["group"])
    expect(cost_chart.locator("tbody tr").last).to_contain_text(str(today["calls"]))

    with page.expect_download() as download:
        page.get_by_role("button", name="CSV by model").click()
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert sum(int(r["calls"]) for r in rows) == calls
    assert {r["model"] for r in rows} == {"mock/echo", "openai/gpt-4o-mini"}

    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("rowheader", name="mock/echo")).to_be_visible()
    # Hundreds of models: the filter narrows the table by id or provider, and to ready ones.
    page.get_by_label("Filter").fill("gpt-4o mini")
    expect(page.get_by_role("rowheader", name="openai/gpt-4o-mini", exact=True)).to_be_visible()
    expect(page.get_by_role("rowheader", name="mock/echo")).to_have_count(0)
    expect(page.locator("#models-count")).to_contain_text(" of ")
    page.get_by_label("ready here only").check()
    expect(page.locator("#models-list [data-configured=false]")).to_have_count(0)
    page.get_by_label("Model", exact=True).select_option("mock/echo")
    page.get_by_label("Message").fill("from the try-it form")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#try-answer .reply")).to_have_text("Echo: from the try-it form")
    _shot(page, "models", tmp_path)
    calls += 1  # the try-it call is metered like any other
    assert runner.settled_report(team_key, TEAM, at_least=calls)["totals"]["calls"] == calls

    page.get_by_role("link", name="Overview").click()
    expect(page.locator("[data-testid=month-totals] [data-total=calls]")).to_have_text(str(calls))
    expect(page.locator("[data-widget=quota] progress")).to_be_visible()  # the billing card
    assert "null" not in page.locator("[data-widget=quota]").inner_text()
    _shot(page, "overview", tmp_path)


def test_admin_switches_team_and_sees_its_keys(page: Page, runner: Runner, team_key: str) -> None:
    admin = httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {runner.admin_key}"})
    long_name = "a-team-whose-id-is-rather-long-for-a-select"
    assert admin.post("/admin/teams", json={"team_id": long_name}).status_code in (201, 409)
    page.set_viewport_size({"width": 1280, "height": 800})
    _sign_in(page, runner, runner.admin_key)
    expect(page.locator(".who .badge")).to_have_text("admin")
    # At 1280 px the admin's header (pages, key, team switcher, sign out) is one row.
    nav, who = page.locator("#nav").bounding_box(), page.locator("#who").bounding_box()
    assert nav is not None
    assert who is not None
    assert abs(nav["y"] - who["y"]) < nav["height"], (nav, who)
    assert (page.locator("header.top").bounding_box() or {"height": 999})["height"] < 80
    page.get_by_label("Team").select_option(TEAM)
    page.get_by_role("link", name="API keys").click()
    expect(page.locator("#key-list caption")).to_have_text(f"Keys of team {TEAM}")
    expect(page.locator("#key-list tr", has_text="portal owner")).to_contain_text("active")


def test_catalog_owner_runs_the_lifecycle_and_another_team_asks_for_access(
    page: Page, runner: Runner, team_key: str, tmp_path: Path
) -> None:
    design = {
        "slug": "shout-e2e",
        "title": "Shout",
        "description": "Repeats a text, loudly",
        "model": "mock/echo",
        "prompt": {"user": "{{text}}!"},
        "input_schema": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "what to shout"}},
            "required": ["text"],
        },
        "visibility": "org",
    }
    owner = httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {team_key}"})
    assert owner.post("/apis", json=design).status_code == 201, "the owner designs a draft"

    _sign_in(page, runner, team_key)
    page.get_by_role("link", name="API catalog").click()
    card = page.locator("article[data-slug=shout-e2e]")
    expect(card.locator(".badge")).to_have_text("draft")
    card.get_by_text("Docs").click()
    expect(card.get_by_role("rowheader", name="text")).to_be_visible()
    card.get_by_label("Try shout-e2e: variables (JSON)").fill('{"text": "hello"}')
    card.get_by_role("button", name="Dry run").click()
    expect(card.locator("pre.code")).to_contain_text("Echo: hello!")
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Publish").click()
    expect(card.locator(".badge")).to_have_text("published")
    card.get_by_label("Try shout-e2e: variables (JSON)").fill('{"text": "live"}')
    card.get_by_role("button", name="Call").click()
    expect(card.locator("pre.code")).to_contain_text("Echo: live!")
    _shot(page, "catalog", tmp_path)

    admin = httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {runner.admin_key}"})
    assert admin.post("/admin/teams", json={"team_id": "catalog-guest"}).status_code == 201
    guest = admin.post("/admin/teams/catalog-guest/keys", json={"name": "guest"}).json()["secret"]
    page.get_by_role("button", name="Sign out").click()
    _sign_in(page, runner, guest)
    page.get_by_role("link", name="API catalog").click()
    card = page.locator("article[data-slug=shout-e2e]")
    expect(card).to_contain_text("your access: none")
    ask = card.get_by_role("button", name="Request access")
    # The button stands apart from the line above it.
    line, button = card.locator("p.help").bounding_box(), ask.bounding_box()
    assert line is not None
    assert button is not None
    assert button["y"] - (line["y"] + line["height"]) >= 8
    ask.click()
    expect(card).to_contain_text("your access: pending")
    assert owner.get("/apis/shout-e2e/access-requests").json()["data"][0]["team_id"] == "catalog-guest"

    # Retired, an API says so: its (future) sunset date is no longer shown.
    for step in ({"to": "deprecated", "sunset": "2099-01-01T00:00:00Z"}, {"to": "retired"}):
        assert owner.post("/apis/shout-e2e/transitions", json=step).status_code == 200
    page.get_by_role("button", name="Sign out").click()
    _sign_in(page, runner, team_key)
    page.get_by_role("link", name="API catalog").click()
    card = page.locator("article[data-slug=shout-e2e]")
    expect(card.locator(".badge")).to_have_text("retired")
    expect(card.locator("p.help")).to_contain_text("retired")
    expect(card.locator("p.help")).not_to_contain_text("sunset")
    expect(card.locator("p.help")).not_to_contain_text("2099")


def test_quota_bar_and_the_402_state_with_its_fix_button(page: Page, runner: Runner, tmp_path: Path) -> None:
    admin = httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {runner.admin_key}"})
    assert admin.put("/admin/plans/tiny-e2e", json={"name": "Tiny", "monthly_tokens": 60}).status_code < 300
    assert admin.post("/admin/teams", json={"team_id": "tiny-team"}).status_code == 201
    assert admin.put("/admin/teams/tiny-team/plan", json={"plan_id": "tiny-e2e"}).status_code < 300
    secret = admin.post("/admin/teams/tiny-team/keys", json={"name": "tiny"}).json()["secret"]
    client = openai.OpenAI(api_key=secret, base_url=runner.base_url + "/v1", max_retries=0)
    refused: openai.APIStatusError | None = None
    for _ in range(6):
        try:
            client.chat.completions.create(
                model="mock/echo", messages=[{"role": "user", "content": "use up the quota"}], max_tokens=10
            )
        except openai.APIStatusError as exc:
            refused = exc
            break
    assert refused is not None, "a 60-token plan refuses within six calls"
    assert refused.status_code == 402
    problem = refused.response.json()

    _sign_in(page, runner, secret)
    widget = page.locator("[data-widget=quota]")
    expect(widget.locator("progress")).to_have_attribute("max", "60")
    page.get_by_role("link", name="Billing").click()
    billing = page.locator("section.page[data-page=billing][data-ready=true]")
    expect(billing.locator("[data-billing-state]")).to_contain_text("Active")
    subscribe = billing.get_by_role("link", name="Subscribe")
    assert "/billing/checkout" in (subscribe.get_attribute("href") or "")
    _shot(page, "billing", tmp_path)

    # A call refused with 402 from the portal itself raises the banner with the problem's fix_url.
    page.get_by_role("link", name="Models").click()
    page.get_by_label("Message").fill("one more")
    page.get_by_role("button", name="Send").click()
    banner = page.get_by_role("alert").filter(has_text="Payment required")
    expect(banner).to_contain_text(problem["code"])
    expect(banner).to_be_visible()
    # The same signed link the 402 carried (signed again for this call, so compare up to the token).
    fix_prefix = problem["fix_url"].split("?token=")[0] + "?token=tiny-team."
    expect(banner.get_by_role("link", name="Fix payment")).to_have_attribute(
        "href", re.compile("^" + re.escape(fix_prefix))
    )

    # Elsewhere in the portal the banner goes, and leaves no empty strip behind.
    page.get_by_role("link", name="Overview").click()
    expect(page.locator("section.page[data-page=overview][data-ready=true]")).to_be_visible()
    assert page.locator("#banner").bounding_box() is None


def test_agent_payments_page_admin_opts_in_and_a_team_key_switches_off(
    page: Page, runner: Runner, tmp_path: Path
) -> None:
    admin = httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {runner.admin_key}"})
    assert (
        admin.put(
            "/admin/plans/portal-pack", json={"kind": "credits", "credits_micro_usd": 5_000_000}
        ).status_code
        < 300
    )
    assert admin.post("/admin/teams", json={"team_id": "agents-portal"}).status_code == 201
    secret = admin.post("/admin/teams/agents-portal/keys", json={"name": "agent"}).json()["secret"]

    _sign_in(page, runner, runner.admin_key)
    page.get_by_label("Team").select_option("agents-portal")
    page.get_by_role("link", name="Agent payments").click()
    section = page.locator("section.page[data-page=agent-payments][data-ready=true]")
    expect(section.locator("[data-mpp-state]")).to_have_attribute("data-mpp-state", "off")
    form = section.get_by_role("form", name="Machine payment settings")
    form.get_by_label("On", exact=True).check()
    form.get_by_label("Pack").fill("portal-pack")
    form.get_by_label("Key/day").fill("2")
    form.get_by_role("button", name="Save").click()
    expect(section.locator("[data-mpp-state]")).to_have_attribute("data-mpp-state", "on")
    expect(section).to_contain_text("portal-pack: $5")
    expect(section).to_contain_text("10 for the team, 2 per key")
    expect(section).to_contain_text("No agent has paid yet.")
    _shot(page, "agent-payments", tmp_path)
    assert admin.get("/admin/teams/agents-portal/machine-payments").json()["key_daily_limit"] == 2

    # The team's own key sees the settings and may only switch them off.
    page.get_by_role("button", name="Sign out").click()
    _sign_in(page, runner, secret)
    page.get_by_role("link", name="Agent payments").click()
    section = page.locator("section.page[data-page=agent-payments][data-ready=true]")
    expect(section.get_by_role("form", name="Machine payment settings")).to_have_count(0)
    section.get_by_role("button", name="Switch off").click()
    expect(section.locator("[data-mpp-state]")).to_have_attribute("data-mpp-state", "off")
    assert admin.get("/admin/teams/agents-portal/machine-payments").json()["enabled"] is False
