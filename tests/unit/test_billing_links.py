"""Billing links (issue 11, item 8): the link in a 402 is a bearer token, so it is short-lived,
bound to team, purpose and the key that obtained it, revocable, and never in message text."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from aigw import clock, keys, teams
from aigw.billing import account
from aigw.bootstrap import bootstrap_admin
from tests.helpers.apigw import call
from tests.helpers.sdk import openai_client, refusal
from tests.helpers.stripe import FakeStripe, deliver, open_link, stripe_event
from tests.unit.billing_fixtures import CHAT, HELLO, acme_key, billing_env

__all__ = ["acme_key", "billing_env"]


@pytest.fixture
def fake_stripe(monkeypatch: pytest.MonkeyPatch, billing_env: None) -> FakeStripe:
    from tests.conftest import reset_core

    server = FakeStripe().start()
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_fake")
    monkeypatch.setenv("STRIPE_API_BASE", server.url)
    reset_core()
    server.prices.update({"pro-monthly": "price_1SgwPro", "credits-10": "price_credits10"})
    yield server  # type: ignore[misc]
    server.stop()


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    return parts._replace(query=urlencode({**_query(url), **changes})).geturl()


def _fix_url(key: str) -> str:
    reply = call("POST", CHAT, body=HELLO, key=key)
    assert reply.status == 402, reply.body
    return str(reply.json()["fix_url"])


def _at(monkeypatch: pytest.MonkeyPatch, offset: int) -> None:
    real_now = clock.now
    monkeypatch.setattr(clock, "now", lambda: real_now() + offset)


def test_the_402_message_never_carries_the_link(acme_key: str) -> None:
    """Fails on the old main: detail and error.message ended in 'Fix it here: <url with token>'."""
    err = refusal(openai_client(acme_key))
    assert err.status_code == 402
    assert err.code == "no_subscription"
    assert "token=" not in err.message
    assert "/billing/" not in err.message
    assert "fix_url" in err.message  # it says where the link is instead
    problem = err.response.json()
    assert "token=" not in problem["detail"]
    assert "token=" not in problem["error"]["message"]
    assert "/billing/checkout?token=" in problem["fix_url"]
    assert err.response.headers["link"] == f'<{problem["fix_url"]}>; rel="payment"'
    assert err.response.headers["cache-control"] == "no-store"


def test_a_link_lives_about_an_hour(
    acme_key: str, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails on the old main: links lived seven days."""
    url = _fix_url(acme_key)
    _at(monkeypatch, 3_500)
    assert open_link(url).status == 303
    _at(monkeypatch, 3_601)
    expired = open_link(url)
    assert (expired.status, expired.json()["code"], expired.json()["param"]) == (
        400,
        "expired_billing_link",
        "token",
    )


def test_a_link_dies_with_the_key_that_obtained_it(acme_key: str, fake_stripe: FakeStripe) -> None:
    """Fails on the old main: a link kept working after its key was revoked."""
    url = _fix_url(acme_key)
    assert open_link(url).status == 303
    admin = bootstrap_admin().secret
    (key,) = keys.list_keys("acme")
    assert call("DELETE", f"/admin/teams/acme/keys/{key.key_id}", key=admin).status == 200
    refused = open_link(url)
    assert (refused.status, refused.json()["code"]) == (400, "revoked_billing_link")
    assert len(fake_stripe.calls("/v1/checkout/sessions")) == 1  # Stripe was not reached again


def test_a_link_never_outlives_an_expiring_key(
    billing_env: None, fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    teams.create_team("acme")
    short = keys.create_key("acme", expires_at=clock.now() + 600).secret
    url = _fix_url(short)
    assert open_link(url).status == 303
    _at(monkeypatch, 601)
    assert open_link(url).json()["code"] in ("expired_billing_link", "revoked_billing_link")
    assert open_link(url).status == 400


def test_a_link_opens_only_its_purpose_and_plan(acme_key: str, fake_stripe: FakeStripe) -> None:
    """Fails on the old main: a token opened the portal, any checkout, for any plan."""
    deliver(stripe_event("customer.subscription.created"))  # acme gets a Stripe customer
    deliver(stripe_event("customer.subscription.updated", status="unpaid"))
    portal = _fix_url(acme_key)
    assert "/billing/portal?token=" in portal
    as_checkout = open_link(portal.replace("/billing/portal?", "/billing/checkout?"))
    assert (as_checkout.status, as_checkout.json()["code"]) == (400, "invalid_billing_link")

    checkout = str(call("GET", "/billing/status", key=acme_key).json()["links"]["checkout"])
    credits = open_link(_with_query(checkout, plan="credits-10"))
    assert (credits.status, credits.json()["param"]) == (400, "plan")
    as_portal = open_link(checkout.replace("/billing/checkout?", "/billing/portal?"))
    assert (as_portal.status, as_portal.json()["code"]) == (400, "invalid_billing_link")
    assert fake_stripe.calls("/v1/billing_portal/sessions") == []
    assert fake_stripe.calls("/v1/checkout/sessions") == []
    assert open_link(portal).status == 303  # the genuine links still work
    assert open_link(checkout).status == 303


def test_a_checkout_link_buys_the_plan_it_names(acme_key: str, fake_stripe: FakeStripe) -> None:
    account.grant_credits("acme", 1)  # less than any call costs
    url = _fix_url(acme_key)
    assert _query(url)["plan"] == "credits-10"  # credits ran out: the credit pack
    without_plan = urlsplit(url)._replace(query=urlencode({"token": _query(url)["token"]})).geturl()
    assert open_link(without_plan).status == 303  # the token's own plan
    (sent,) = fake_stripe.calls("/v1/checkout/sessions")
    assert (sent["mode"], sent["metadata[aigw_plan]"]) == ("payment", "credits-10")


def test_an_admin_can_void_every_link_of_a_team(acme_key: str, fake_stripe: FakeStripe) -> None:
    """Fails on the old main: there was no way to revoke a link short of rotating the secret."""
    admin = bootstrap_admin().secret
    old = _fix_url(acme_key)
    reply = call("POST", "/admin/teams/acme/billing/revoke-links", key=admin)
    assert (reply.status, reply.json()) == (200, {"team_id": "acme", "link_generation": 1})
    refused = open_link(old)
    assert (refused.status, refused.json()["code"]) == (400, "revoked_billing_link")
    assert open_link(_fix_url(acme_key)).status == 303  # links issued afterwards work
    assert call("POST", "/admin/teams/acme/billing/revoke-links", key=acme_key).status == 403
    assert call("POST", "/admin/teams/ghost/billing/revoke-links", key=admin).status == 404


def test_status_gives_a_key_links_of_its_own_team_bound_to_it(acme_key: str, fake_stripe: FakeStripe) -> None:
    """Any active key of the team gets its own team's links; they die with that key."""
    teams.create_team("beta")
    beta_key = keys.create_key("beta").secret
    other = keys.create_key("acme", name="other")
    assert call("GET", "/billing/status").status == 401
    acme_status = call("GET", "/billing/status", key=acme_key)
    assert acme_status.header("Cache-Control") == "no-store"
    links = acme_status.json()["links"]
    assert links["portal"] is None  # no Stripe customer yet
    expires = datetime.fromisoformat(links["expires_at"]).timestamp()
    assert 3_500 <= expires - clock.now() <= 3_600
    beta_links = call("GET", "/billing/status", key=beta_key).json()["links"]
    assert _query(beta_links["checkout"])["token"].startswith("beta.")
    assert _query(links["checkout"])["token"].startswith("acme.")
    keys.revoke_key("acme", other.key.key_id)
    assert open_link(links["checkout"]).status == 303  # another key's revocation: unaffected
    (mine,) = [k for k in keys.list_keys("acme") if k.name == "test"]
    keys.revoke_key("acme", mine.key_id)
    assert open_link(links["checkout"]).json()["code"] == "revoked_billing_link"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace("acme.", "beta.", 1),  # another team
        lambda t: t.replace(".checkout.", ".portal.", 1),  # another purpose
        lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # signature
        lambda t: ".".join(t.split(".")[:1] + t.split(".")[-1:]),  # the old three-part shape
        lambda t: t.split(".")[0] + "." + str(clock.now() + 10**6) + "." + t.split(".")[-1],
    ],
)
def test_altered_tokens_are_refused(acme_key: str, fake_stripe: FakeStripe, tamper: object) -> None:
    teams.create_team("beta")
    url = _fix_url(acme_key)
    token = _query(url)["token"]
    altered = tamper(token)  # type: ignore[operator]
    reply = open_link(_with_query(url, token=altered))
    assert reply.status == 400
    assert reply.json()["code"] == "invalid_billing_link"
    assert fake_stripe.calls("/v1/checkout/sessions") == []
