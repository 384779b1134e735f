"""The Machine Payments Protocol on the wire: the ``Payment`` HTTP authentication scheme
(draft-httpauth-payment) with the Stripe ``charge`` intent (draft-stripe-charge).

Pure functions and frozen values, no I/O: the challenge a 402 carries
(``WWW-Authenticate: Payment id=..., request=...``), the binding of its ``id`` to every other
parameter (HMAC-SHA256, the draft's recommended layout, as pympp computes it), the credential an
agent sends back (``Payment-Authorization: Payment <base64url JSON>``), the body digest
(RFC 9530) and the receipt. What the gateway does with them is :mod:`aigw.billing.machine_payments`.

The few JSON values the gateway puts in a challenge (strings, lists and objects of strings) are
serialised with JCS (RFC 8785) here; for those types JCS is sorted keys, no whitespace and the
string escapes of ECMAScript's ``JSON.stringify``, which :func:`json.dumps` produces as well.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEME = "Payment"
CREDENTIAL_HEADER = "Payment-Authorization"
RECEIPT_HEADER = "Payment-Receipt"
PROBLEM_BASE = "https://paymentauth.org/problems/"
METHOD = "stripe"
INTENT = "charge"

# The draft asks servers to accept credentials of at least 4 KB; ours echo a challenge of ~1 KB.
MAX_CREDENTIAL_CHARS = 16 * 1024
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_CREDENTIAL = re.compile(r"^\s*Payment\s+([A-Za-z0-9_-]+)\s*$", re.IGNORECASE)


class MalformedCredential(ValueError):
    """The credential is not base64url JSON of the draft's shape (the message says what)."""


# ---- encodings --------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: anything else is refused, never guessed at."""
    if not _B64URL.match(text):
        raise MalformedCredential("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedCredential("not base64url") from exc


def _check_jcs(value: Any) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise TypeError("JCS here takes ASCII object keys only")
            _check_jcs(item)
    elif isinstance(value, list):
        for item in value:
            _check_jcs(item)
    elif not (value is None or isinstance(value, (str, bool))):
        # Numbers would need ECMAScript number formatting: amounts travel as strings anyway.
        raise TypeError(f"JCS here takes strings, booleans, lists and objects, not {type(value).__name__}")


def jcs(value: Any) -> bytes:
    """RFC 8785 canonical JSON of strings, booleans, null, lists and objects with ASCII keys."""
    _check_jcs(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_json(value: Any) -> str:
    """base64url (no padding) of the JCS form: the ``request`` and ``opaque`` parameters."""
    return b64url(jcs(value))


def decode_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(text))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedCredential("not base64url JSON") from exc
    if not isinstance(value, dict):
        raise MalformedCredential("not a JSON object")
    return value


def content_digest(body: bytes) -> str:
    """The body's digest as RFC 9530 writes it: ``sha-256=:<base64>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


# ---- the challenge ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """One ``Payment`` challenge, its ``request`` and ``opaque`` as on the wire (base64url JCS)."""

    id: str
    realm: str
    method: str
    intent: str
    request: str
    expires: str | None = None
    digest: str | None = None
    opaque: str | None = None
    header: str | None = None
    description: str | None = None

    def request_json(self) -> dict[str, Any]:
        return decode_json(self.request)

    def opaque_json(self) -> dict[str, Any]:
        return decode_json(self.opaque) if self.opaque else {}

    def www_authenticate(self) -> str:
        params = [
            ("id", self.id),
            ("realm", self.realm),
            ("method", self.method),
            ("intent", self.intent),
            ("request", self.request),
            ("expires", self.expires),
            ("digest", self.digest),
            ("opaque", self.opaque),
            ("header", self.header),
            ("description", self.description),
        ]
        return SCHEME + " " + ", ".join(f'{name}="{_quote(value)}"' for name, value in params if value)

    def echo(self) -> dict[str, str]:
        """The challenge as a credential echoes it."""
        fields = {
            "id": self.id,
            "realm": self.realm,
            "method": self.method,
            "intent": self.intent,
            "request": self.request,
            "expires": self.expires,
            "digest": self.digest,
            "opaque": self.opaque,
            "header": self.header,
            "description": self.description,
        }
        return {k: v for k, v in fields.items() if v is not None}


def _quote(value: str) -> str:
    if any(c in value for c in "\r\n"):
        raise ValueError("header parameters cannot hold line breaks")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def binding_id(
    secret: str,
    *,
    realm: str,
    method: str,
    intent: str,
    request: str,
    expires: str | None,
    digest: str | None,
    opaque: str | None,
    header: str | None,
) -> str:
    """The challenge id: HMAC-SHA256 over every other parameter, base64url.

    The draft's seven positional slots (realm, method, intent, request, expires, digest, opaque;
    absent ones empty), with the credential header put before ``opaque`` when it is not
    ``Authorization``, as pympp binds it. ``request`` and ``opaque`` enter as they are on the
    wire, so a credential that re-encodes them no longer matches.
    """
    slots = [realm, method, intent, request, expires or "", digest or ""]
    if header and header.lower() != "authorization":
        slots.append(header)
    slots.append(opaque or "")
    mac = hmac.new(secret.encode("utf-8"), "|".join(slots).encode("utf-8"), hashlib.sha256)
    return b64url(mac.digest())


def issue(
    secret: str,
    *,
    realm: str,
    request: Mapping[str, Any],
    expires: str,
    digest: str | None,
    opaque: Mapping[str, str],
    description: str | None = None,
) -> Challenge:
    """A Stripe ``charge`` challenge whose id binds everything else in it."""
    request_b64, opaque_b64 = encode_json(dict(request)), encode_json(dict(opaque))
    challenge_id = binding_id(
        secret,
        realm=realm,
        method=METHOD,
        intent=INTENT,
        request=request_b64,
        expires=expires,
        digest=digest,
        opaque=opaque_b64,
        header=CREDENTIAL_HEADER,
    )
    return Challenge(
        id=challenge_id,
        realm=realm,
        method=METHOD,
        intent=INTENT,
        request=request_b64,
        expires=expires,
        digest=digest,
        opaque=opaque_b64,
        header=CREDENTIAL_HEADER,
        description=description,
    )


def is_bound(challenge: Challenge, secret: str) -> bool:
    """True if ``challenge`` was issued with ``secret`` and none of its parameters changed."""
    expected = binding_id(
        secret,
        realm=challenge.realm,
        method=challenge.method,
        intent=challenge.intent,
        request=challenge.request,
        expires=challenge.expires,
        digest=challenge.digest,
        opaque=challenge.opaque,
        header=challenge.header,
    )
    return hmac.compare_digest(expected.encode("ascii"), challenge.id.encode("utf-8", "replace"))


# ---- the credential ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credential:
    challenge: Challenge
    payload: dict[str, Any]
    source: str | None = None


def _text(fields: Mapping[str, Any], name: str, *, required: bool) -> str | None:
    value = fields.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise MalformedCredential(f"challenge.{name} must be a non-empty string")
    return value


def parse_credential(value: str) -> Credential:
    """``Payment <base64url JSON {challenge, payload[, source]}>`` -> :class:`Credential`."""
    if len(value) > MAX_CREDENTIAL_CHARS:
        raise MalformedCredential(f"longer than {MAX_CREDENTIAL_CHARS} characters")
    match = _CREDENTIAL.match(value)
    if match is None:
        raise MalformedCredential("expected 'Payment <base64url>'")
    data = decode_json(match.group(1))
    echoed, payload = data.get("challenge"), data.get("payload")
    if not isinstance(echoed, dict):
        raise MalformedCredential("'challenge' must be an object")
    if not isinstance(payload, dict):
        raise MalformedCredential("'payload' must be an object")
    source = data.get("source")
    challenge = Challenge(
        id=_text(echoed, "id", required=True) or "",
        realm=_text(echoed, "realm", required=True) or "",
        method=_text(echoed, "method", required=True) or "",
        intent=_text(echoed, "intent", required=True) or "",
        request=_text(echoed, "request", required=True) or "",
        expires=_text(echoed, "expires", required=False),
        digest=_text(echoed, "digest", required=False),
        opaque=_text(echoed, "opaque", required=False),
        header=_text(echoed, "header", required=False),
        description=_text(echoed, "description", required=False),
    )
    return Credential(challenge, payload, source if isinstance(source, str) else None)


def credential(challenge: Challenge, payload: Mapping[str, Any]) -> str:
    """A credential header value (what an agent sends; the gateway's tests use pympp's)."""
    return SCHEME + " " + b64url(jcs({"challenge": challenge.echo(), "payload": dict(payload)}))


# ---- the receipt -------------------------------------------------------------------------------


def receipt(reference: str, timestamp: str) -> str:
    """``Payment-Receipt``: base64url JSON ``{status, method, timestamp, reference}``."""
    return encode_json(
        {"status": "success", "method": METHOD, "timestamp": timestamp, "reference": reference}
    )
