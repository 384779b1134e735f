"""Provider credentials: an environment value locally, SSM Parameter Store or Secrets Manager
in AWS.

Values are cached by Powertools for five minutes, so a rotated key is picked up without a
redeploy and without a call per request. A reference that starts with
``arn:aws:secretsmanager:`` is read from Secrets Manager, anything else from SSM.
"""

from __future__ import annotations

from aigw.errors import UpstreamError

_MAX_AGE = 300
# Every credential resolved in this container, so vendor messages that echo one can be
# redacted (aigw.providers.upstream.redact). Values only grow: a rotated key stays redacted.
_resolved: set[str] = set()


def resolved_secrets() -> frozenset[str]:
    return frozenset(_resolved)


def resolve_secret(value: str | None, parameter: str | None, *, what: str) -> str:
    secret = _resolve(value, parameter, what=what)
    _resolved.add(secret)
    return secret


def _resolve(value: str | None, parameter: str | None, *, what: str) -> str:
    if value:
        return value
    if parameter:
        from aws_lambda_powertools.utilities import parameters

        if parameter.startswith("arn:") and ":secretsmanager:" in parameter:
            secret = parameters.get_secret(parameter, max_age=_MAX_AGE)
            return secret if isinstance(secret, str) else secret.decode("utf-8")
        return parameters.get_parameter(parameter, decrypt=True, max_age=_MAX_AGE)
    raise UpstreamError(
        f"The {what} provider is not configured on this gateway", code="provider_not_configured"
    )
