"""The billing loop in real Chromium against the local runner and its Stripe simulator: a team
runs out, the portal shows the 402, the fix opens (simulated) Checkout, the payment's webhooks
reach the gateway's own /webhooks/stripe, and the portal is back in business.

No STRIPE_API_KEY is set for the runner, so every Stripe page here is the simulator's, on the
runner's own origin (the page fixture refuses any other host).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.conftest import Runner

pytestmark = pytest.mark.e2e

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Locator, Page, expect  # noqa: E402

from tests.helpers.browser import shot, sign_in  # noqa: E402


def _admin(runner: Runner) -> httpx.Client:
    return httpx.Client(base_url=runner.base_url, headers={"Authorization": f"Bearer {runner.admin_key}"})


def _team(runner: Runner, team_id: str, *, plan: str | None = None) -> str:
    admin = _admin(runner)
    assert admin.post("/admin/teams", json={"team_id": team_id, "name": team_id.title()}).status_code == 201
    if plan:
        assert admin.put(f"/admin/teams/{team_id}/plan", json={"plan_id": plan}).status_code < 300
    return str(admin.post(f"/admin/teams/{team_id}/keys", json={"name": "owner"}).json()["secret"])


def _status(runner: Runner, key: str) -> dict[str, object]:
    reply = httpx.get(runner.base_url + "/billing/status", headers={"Authorization": f"Bearer {key}"})
    assert reply.status_code == 200
    status: dict[str, object] = reply.json()
    return status


def _billing(page: Page) -> None:
    page.get_by_role("link", name="Billing", exact=True).click()
    expect(page.locator("section.page[data-page=billing][data-ready=true]")).to_be_visible()


def _grace(page: Page) -> Locator:
    return page.locator(".facts dt:text-is('Grace until') + dd")


def _pay(page: Page, card: str, button: str | re.Pattern[str] = "Subscribe") -> None:
    page.get_by_role("radio", name=re.compile("^" + card)).check()
    page.get_by_role("button", name=button).click()


def test_from_a_402_to_a_paid_subscription(page: Page, runner: Runner, tmp_path: Path) -> None:
    admin = _admin(runner)
    tiny = {"name": "Tiny", "monthly_tokens": 120, "default_max_tokens": 20}
    assert admin.put("/admin/plans/loop-tiny", json=tiny).status_code < 300
    secret = _team(runner, "loop-team", plan="loop-tiny")

    # Calls until the plan runs out: the SDK gets the 402 with its code and fix link.
    client = openai.OpenAI(api_key=secret, base_url=runner.base_url + "/v1", max_retries=0)
    hello = [{"role": "user", "content": "spend my tokens"}]
    refused: openai.APIStatusError | None = None
    for _ in range(20):
        try:
            client.chat.completions.create(model="mock/echo", messages=hello, max_tokens=20)  # type: ignore[arg-type]
        except openai.APIStatusError as exc:
            refused = exc
            break
    assert refused is not None
    assert (refused.status_code, refused.code) == (402, "quota_exhausted")
    assert "/billing/" in refused.response.json()["fix_url"]

    # In the portal, the try-it form defaults to a model that works here, and is refused too.
    sign_in(page, runner, secret)
    page.get_by_role("link", name="Models").click()
    models = page.get_by_label("Model", exact=True)
    expect(models).to_have_value("mock/echo")
    expect(models.locator("option", has_text="gemini/gemini-2.0-flash")).to_have_text(
        "gemini/gemini-2.0-flash (not configured)"  # no GEMINI_API_KEY in this runner
    )
    row = page.locator("tr", has=page.get_by_role("rowheader", name="gemini/gemini-2.0-flash", exact=True))
    expect(row.locator("[data-configured]")).to_have_text("not configured")
    page.get_by_label("Message").fill("one more, a longer one " * 25)  # more than the plan has left
    page.get_by_role("button", name="Send").click()
    banner = page.get_by_role("alert").filter(has_text="Payment required")
    expect(banner).to_contain_text("quota_exhausted")
    expect(banner).not_to_contain_text("Fix it here")  # the link is a button, not a URL in the text
    inline = page.locator("#try-answer")
    expect(inline.get_by_role("link", name="Fix payment")).to_have_attribute("href", re.compile("/billing/"))
    shot(page, "billing-402", tmp_path)

    # The fix opens Checkout (simulated, and saying so).
    banner.get_by_role("link", name="Fix payment").click()
    expect(page.locator("[data-simulated=stripe]")).to_contain_text("Simulated Stripe")
    expect(page.get_by_role("heading", name="Subscribe to Local Pro")).to_be_visible()
    expect(page.get_by_text("loop-team")).to_be_visible()
    shot(page, "stripe-checkout", tmp_path)
    _pay(page, "4242 4242 4242 4242")

    # Back in the portal: the webhooks were applied before the page came back.
    expect(page).to_have_url(re.compile(r"/portal#/billing$"))
    billing = page.locator("section.page[data-page=billing][data-ready=true]")
    expect(billing.locator("[data-return-notice]")).to_contain_text("Payment complete")
    expect(billing.locator("[data-billing-state]")).to_contain_text("Active")
    expect(billing.locator(".facts")).to_contain_text("local-pro")
    expect(billing.locator(".facts")).to_contain_text("active")
    expect(billing.get_by_role("link", name="Manage billing")).to_be_visible()
    expect(billing.get_by_role("link", name="Fix payment")).to_have_count(0)
    # The 402 banner is gone, and leaves no empty strip behind.
    assert page.locator("#banner").bounding_box() is None

    page.get_by_role("link", name="Models").click()
    page.get_by_label("Message").fill("paid now")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#try-answer .reply")).to_have_text("Echo: paid now")
    assert page.locator("#banner").bounding_box() is None
    _billing(page)
    quota = page.locator("[data-page=billing] .quota label").first
    expect(quota).to_contain_text("of 50,000,000 used")
    expect(quota).not_to_contain_text(" 0 of")  # the call after paying counted in the new period

    status = _status(runner, secret)
    assert (status["allowed"], status["subscription_status"], status["plan_id"]) == (
        True,
        "active",
        "local-pro",
    )


def test_a_declined_card_then_a_retry_then_success(page: Page, runner: Runner) -> None:
    secret = _team(runner, "declined-team")
    sign_in(page, runner, secret)
    _billing(page)
    page.get_by_role("link", name="Subscribe").click()
    expect(page.locator("[data-simulated=stripe]")).to_be_visible()

    _pay(page, "4000 0000 0000 0002")
    expect(page.locator("#payment-error")).to_have_text("Your card was declined.")
    expect(page.get_by_role("button", name="Subscribe")).to_be_visible()  # Checkout is still open

    _pay(page, "4000 0027 6000 3184")
    expect(page.get_by_role("heading", name="3-D Secure authentication")).to_be_visible()
    page.get_by_role("button", name="Fail authentication").click()
    expect(page.locator("#payment-error")).to_contain_text("unable to authenticate")

    status = _status(runner, secret)
    assert status["subscription_id"] is None  # nothing was bought, nothing reached the gateway

    _pay(page, "4000 0027 6000 3184")
    page.get_by_role("button", name="Complete authentication").click()
    billing = page.locator("section.page[data-page=billing][data-ready=true]")
    expect(billing.locator("[data-return-notice]")).to_contain_text("Payment complete")
    expect(billing.locator(".facts")).to_contain_text("active")
    expect(billing.locator(".facts")).to_contain_text("local-pro")


def test_manage_renew_with_a_failing_card_pay_the_invoice_then_cancel(
    page: Page, runner: Runner, tmp_path: Path
) -> None:
    secret = _team(runner, "manage-team")
    sign_in(page, runner, secret)
    _billing(page)
    page.get_by_role("link", name="Subscribe").click()
    _pay(page, "4242 4242 4242 4242")
    expect(page.locator("[data-billing-state]")).to_contain_text("Active")
    first_period = page.locator(".facts").inner_text()

    # The customer portal: a card that will be declined, then the next period (a test clock).
    page.get_by_role("link", name="Manage billing").click()
    expect(page.get_by_role("heading", name=re.compile("^Billing for"))).to_be_visible()
    page.get_by_role("radio", name=re.compile("^4000 0000 0000 0002")).check()
    page.get_by_role("button", name="Update payment method").click()
    expect(page.locator("[data-card]")).to_contain_text("0002")
    page.get_by_role("button", name=re.compile("^Renew now")).click()
    subscription = page.locator("[data-subscription]")
    expect(subscription.locator("[data-status]")).to_have_text("past_due")
    events = page.get_by_role("table", name="Webhook events")
    expect(events).to_contain_text("invoice.payment_failed")
    notifications = page.get_by_role("table", name="Notifications")
    expect(notifications).to_contain_text("Payment Failed")
    expect(notifications).to_contain_text("Grace Started")
    shot(page, "stripe-portal", tmp_path)

    page.get_by_role("link", name="← Return to aigw").click()
    billing = page.locator("section.page[data-page=billing][data-ready=true]")
    expect(billing.locator(".facts")).to_contain_text("past_due")
    expect(billing.locator("[data-billing-state]")).to_contain_text("Active")  # the grace period
    assert billing.locator(".facts").inner_text() != first_period  # the period moved on
    expect(_grace(page)).not_to_have_text("—")

    # The failed invoice, paid on its hosted page.
    page.get_by_role("link", name="Manage billing").click()
    page.get_by_role("table", name="Invoices").get_by_role("link", name="Pay").click()
    expect(page.get_by_role("heading", name=re.compile("^Invoice "))).to_be_visible()
    _pay(page, "4242 4242 4242 4242", button=re.compile(r"^Pay \$"))
    expect(page.locator("[data-return-notice]")).to_contain_text("Invoice paid")
    expect(page.locator(".facts")).to_contain_text("active")
    expect(_grace(page)).to_have_text("—")

    # Cancel: the team is refused, and the fix is a new subscription through Checkout.
    page.get_by_role("link", name="Manage billing").click()
    page.get_by_role("button", name="Cancel immediately").click()
    expect(page.locator("[data-subscription] [data-status]")).to_have_text("canceled")
    page.get_by_role("link", name="← Return to aigw").click()
    billing = page.locator("section.page[data-page=billing][data-ready=true]")
    expect(billing.locator("[data-billing-state]")).to_contain_text("subscription_inactive")
    fix = billing.get_by_role("link", name="Fix payment")
    expect(fix).to_have_attribute("href", re.compile("/billing/checkout"))
    client = openai.OpenAI(api_key=secret, base_url=runner.base_url + "/v1", max_retries=0)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="mock/echo", messages=[{"role": "user", "content": "hi"}])
    assert (refused.value.status_code, refused.value.code) == (402, "subscription_inactive")
