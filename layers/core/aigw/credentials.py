"""Provider credentials: an environment value locally, SSM Parameter Store in AWS.

Values from SSM are cached by Powertools for five minutes, so a rotated key is picked up
without a redeploy and without an SSM call per request.
"""

from __future__ import annotations

from aigw.errors import UpstreamError


def resolve_secret(value: str | None, parameter: str | None, *, what: str) -> str:
    if value:
        return value
    if parameter:
        from aws_lambda_powertools.utilities import parameters

        return parameters.get_parameter(parameter, decrypt=True, max_age=300)
    raise UpstreamError(
        f"The {what} provider is not configured on this gateway", code="provider_not_configured"
    )
