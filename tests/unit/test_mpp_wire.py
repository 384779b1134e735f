"""The Machine Payments Protocol's wire format as the gateway writes and reads it, checked
against pympp, the protocol's reference Python SDK (used here as the oracle only)."""

from __future__ import annotations

import base64
import json

import pytest
import rfc8785
from mpp import Challenge as PyChallenge
from mpp import Credential as PyCredential
from mpp import Receipt as PyReceipt
from mpp import generate_challenge_id
from mpp.methods.stripe.client import OnChallengeParameters, StripeMethod

from aigw.billing import mpp
from tests.helpers import aio

SECRET = "unit-test-challenge-secret"
REQUEST = {
    "amount": "1000",
    "currency": "usd",
    "description": "Credits: 10.00 USD of aigw credits for team acme",
    "methodDetails": {
        "networkId": "profile_1MqDcVKA5fEO2tZvKQm9g8Yj",
        "paymentMethodTypes": ["card", "link"],
    },
}
OPAQUE = {"team": "acme", "key": "key_0123", "pack": "credits-10", "nonce": "n0nce"}
BODY = b'{"model": "mock/echo", "messages": [{"role": "user", "content": "Hi"}]}'


def _challenge() -> mpp.Challenge:
    return mpp.issue(
        SECRET,
        realm="gw.example",
        request=REQUEST,
        expires="2030-01-15T12:05:00Z",
        digest=mpp.content_digest(BODY),
        opaque=OPAQUE,
    )


def test_pympp_parses_the_challenge_and_computes_the_same_binding() -> None:
    ours = _challenge()
    parsed = PyChallenge.from_www_authenticate(ours.www_authenticate())
    assert (parsed.id, parsed.realm, parsed.method, parsed.intent) == (
        ours.id,
        "gw.example",
        "stripe",
        "charge",
    )
    assert parsed.request == REQUEST
    assert parsed.opaque == OPAQUE
    assert parsed.expires == "2030-01-15T12:05:00Z"
    assert parsed.digest == ours.digest
    assert parsed.credential_header == "Payment-Authorization"
    # The id is pympp's HMAC over the same parameters: any MPP server with the key can check it.
    expected = generate_challenge_id(
        secret_key=SECRET,
        realm="gw.example",
        method="stripe",
        intent="charge",
        request=REQUEST,
        expires="2030-01-15T12:05:00Z",
        digest=ours.digest,
        opaque=OPAQUE,
        header="Payment-Authorization",
    )
    assert ours.id == expected
    assert parsed.verify(SECRET, "gw.example")
    assert not parsed.verify("another-secret", "gw.example")


def test_request_is_jcs_base64url_without_padding() -> None:
    ours = _challenge()
    assert "=" not in ours.request
    assert base64.urlsafe_b64decode(ours.request + "==") == rfc8785.dumps(REQUEST)
    for value in (REQUEST, {"b": ["é", "\u2028", "\x01\n\t"], "a": {"z": None, "y": True}}):
        assert mpp.jcs(value) == rfc8785.dumps(value)
    with pytest.raises(TypeError):
        mpp.jcs({"amount": 1.5})  # numbers would need ECMAScript formatting: amounts are strings


def test_content_digest_is_rfc_9530() -> None:
    # RFC 9530, section 2: the example body {"hello": "world"}.
    assert (
        mpp.content_digest(b'{"hello": "world"}') == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    )


def _pympp_credential(challenge: mpp.Challenge, spt: str = "spt_1N4Zv32eZvKYlo2CPhVPkJlW") -> str:
    seen: list[OnChallengeParameters] = []

    async def create_token(params: OnChallengeParameters) -> str:
        seen.append(params)
        return spt

    method = StripeMethod(create_token=create_token, payment_method="pm_card_visa")
    parsed = PyChallenge.from_www_authenticate(challenge.www_authenticate())
    credential = aio.run(method.create_credential(parsed))
    assert (seen[0].amount, seen[0].currency, seen[0].network_id) == (
        "1000",
        "usd",
        REQUEST["methodDetails"]["networkId"],
    )  # type: ignore[index]
    return credential.to_authorization()


def test_a_pympp_credential_parses_and_stays_bound() -> None:
    ours = _challenge()
    credential = mpp.parse_credential(_pympp_credential(ours))
    assert credential.challenge == ours
    assert credential.payload == {"spt": "spt_1N4Zv32eZvKYlo2CPhVPkJlW"}
    assert mpp.is_bound(credential.challenge, SECRET)


@pytest.mark.parametrize(
    "change",
    [
        {"request": mpp.encode_json({**REQUEST, "amount": "1"})},
        {"expires": "2099-01-01T00:00:00Z"},
        {"digest": mpp.content_digest(b"{}")},
        {"opaque": mpp.encode_json({**OPAQUE, "team": "other"})},
        {"realm": "evil.example"},
        {"id": "x" + _challenge().id[1:]},
    ],
)
def test_changing_any_parameter_breaks_the_binding(change: dict[str, str]) -> None:
    tampered = json.loads(base64.urlsafe_b64decode(_pympp_credential(_challenge())[8:] + "=="))
    tampered["challenge"].update(change)
    value = "Payment " + base64.urlsafe_b64encode(json.dumps(tampered).encode()).decode().rstrip("=")
    assert not mpp.is_bound(mpp.parse_credential(value).challenge, SECRET)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("Bearer abc", "expected 'Payment <base64url>'"),
        ("Payment not*base64", "expected 'Payment <base64url>'"),
        ("Payment " + base64.urlsafe_b64encode(b"not json").decode().rstrip("="), "not base64url JSON"),
        ("Payment " + base64.urlsafe_b64encode(b"[1]").decode().rstrip("="), "not a JSON object"),
        ("Payment " + base64.urlsafe_b64encode(b'{"payload": {}}').decode().rstrip("="), "'challenge'"),
        ("Payment " + "A" * 20_000, "longer than"),
    ],
)
def test_malformed_credentials_say_why(value: str, reason: str) -> None:
    with pytest.raises(mpp.MalformedCredential, match=reason):
        mpp.parse_credential(value)


def test_pympp_parses_the_receipt() -> None:
    receipt = PyReceipt.from_payment_receipt(mpp.receipt("pi_123", "2030-01-15T12:04:32Z"))
    assert (receipt.status, receipt.method, receipt.reference) == ("success", "stripe", "pi_123")
    assert receipt.timestamp.isoformat() == "2030-01-15T12:04:32+00:00"


def test_our_credential_encoder_round_trips_through_pympp() -> None:
    value = mpp.credential(_challenge(), {"spt": "spt_abc"})
    parsed = PyCredential.from_authorization(value)
    assert parsed.payload == {"spt": "spt_abc"}
    assert parsed.challenge.id == _challenge().id
