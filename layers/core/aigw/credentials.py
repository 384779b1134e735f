"""Provider credentials: an environment value locally, SSM Parameter Store or Secrets Manager
in AWS; and which providers have theirs here (:func:`configured`, shown in ``/v1/models``).

Values are cached by Powertools for five minutes, so a rotated key is picked up without a
redeploy and without a call per request. A reference that starts with
``arn:aws:secretsmanager:`` is read from Secrets Manager, anything else from SSM.
"""

from __future__ import annotations

import os

from aigw.errors import UpstreamError

_MAX_AGE = 300
# Every credential resolved in this container, so vendor messages that echo one can be
# redacted (aigw.providers.upstream.redact). Values only grow: a rotated key stays redacted.
_resolved: set[str] = set()


def resolved_secrets() -> frozenset[str]:
    return frozenset(_resolved)


def resolve_secret(value: str | None, parameter: str | None, *, what: str, setting: str | None = None) -> str:
    secret = _resolve(value, parameter, what=what, setting=setting)
    _resolved.add(secret)
    return secret


def _resolve(value: str | None, parameter: str | None, *, what: str, setting: str | None) -> str:
    if value:
        return value
    if parameter:
        from aws_lambda_powertools.utilities import parameters

        if parameter.startswith("arn:") and ":secretsmanager:" in parameter:
            secret = parameters.get_secret(parameter, max_age=_MAX_AGE)
            return secret if isinstance(secret, str) else secret.decode("utf-8")
        return parameters.get_parameter(parameter, decrypt=True, max_age=_MAX_AGE)
    hint = f": set {setting} (locally in .env.local; in AWS, {setting}_PARAMETER names the SSM parameter)"
    raise UpstreamError(
        f"The {what} provider is not configured on this gateway{hint if setting else ''}",
        code="provider_not_configured",
    )


# What each provider needs before it can be called: environment settings, one of each group
# (a key, or in AWS the name of the SSM parameter or secret holding it).
_KEY = "{0}_API_KEY", "{0}_API_KEY_PARAMETER"
_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "mock": (),
    "openai": (tuple(k.format("OPENAI") for k in _KEY),),
    "azure": (tuple(k.format("AZURE_OPENAI") for k in _KEY), ("AZURE_OPENAI_ENDPOINT",)),
    "groq": (tuple(k.format("GROQ") for k in _KEY),),
    "together": (tuple(k.format("TOGETHER") for k in _KEY),),
    "deepseek": (tuple(k.format("DEEPSEEK") for k in _KEY),),
    "mistral": (tuple(k.format("MISTRAL") for k in _KEY),),
    "anthropic": (tuple(k.format("ANTHROPIC") for k in _KEY),),
    "gemini": (tuple(k.format("GEMINI") for k in _KEY),),
    # Servers without keys: configured once their address is given.
    "ollama": (("OLLAMA_BASE_URL", "OLLAMA_API_KEY"),),
    "vllm": (("VLLM_BASE_URL", "VLLM_API_KEY"),),
    # The Lambda's IAM role in AWS; elsewhere a region (and AWS credentials) or an endpoint.
    "bedrock": (("BEDROCK_REGION", "BEDROCK_ENDPOINT_URL", "AWS_LAMBDA_FUNCTION_NAME"),),
}


def missing_settings(name: str) -> list[str]:
    """The settings provider ``name`` still needs (the first name of each group); empty when
    it is configured."""
    needs = _NEEDS.get(name, ())
    return [group[0] for group in needs if not any(os.environ.get(s, "").strip() for s in group)]


def configured(name: str) -> bool:
    """Whether this gateway has what provider ``name`` needs (not whether its key is valid)."""
    return name in _NEEDS and not missing_settings(name)
