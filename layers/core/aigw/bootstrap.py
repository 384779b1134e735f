"""The first admin key, written straight to the table (there is no admin yet to ask)."""

from __future__ import annotations

import contextlib
import os

from aigw import keys, teams
from aigw.errors import Conflict, GatewayError

ADMIN_TEAM = "admin"


class BootstrapError(Exception):
    """Why the table could not be written, in one line a person can act on."""


def bootstrap_admin(team_id: str = ADMIN_TEAM, *, name: str = "bootstrap") -> keys.IssuedKey:
    # A second bootstrap just adds another admin key.
    with contextlib.suppress(Conflict):
        teams.create_team(team_id, "Administrators")
    return keys.create_key(team_id, name=name, role="admin")


def bootstrap_admin_at(*, table: str, endpoint: str | None, team_id: str = ADMIN_TEAM) -> keys.IssuedKey:
    """:func:`bootstrap_admin` against ``table`` (at ``endpoint``: DynamoDB Local; else AWS)."""
    os.environ["TABLE_NAME"] = table
    if endpoint:
        os.environ["DYNAMODB_ENDPOINT"] = endpoint
        # DynamoDB Local takes any credentials; without any, boto3 would refuse to sign.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from aigw import table as table_module
    from aigw.config import settings

    settings.cache_clear()
    table_module.reset()
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return bootstrap_admin(team_id)
    except (GatewayError, BotoCoreError, ClientError) as exc:
        raise BootstrapError(_explain(exc, table=table, endpoint=endpoint)) from exc


def _explain(exc: Exception, *, table: str, endpoint: str | None) -> str:
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )

    cause = exc.__cause__ if isinstance(exc, GatewayError) else exc
    where = f"DynamoDB at {endpoint}" if endpoint else "AWS DynamoDB"
    if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
        return (
            "no AWS credentials: configure them (aws configure, AWS_PROFILE) to reach a deployed table, "
            "or pass --endpoint with the DynamoDB Local endpoint 'make dev' prints"
        )
    if isinstance(cause, NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION (or AWS_REGION)"
    if isinstance(cause, EndpointConnectionError):
        hint = " (is 'make dev' running? it prints the endpoint to use)" if endpoint else ""
        return f"cannot reach {where}{hint}"
    if isinstance(cause, ClientError):
        code = cause.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException":
            return f"table '{table}' does not exist in {where}; pass --table (the GatewayTableName output)"
        message = cause.response.get("Error", {}).get("Message", "")
        return f"{where} refused: {code} {message}".strip()
    return f"cannot use {where}: {cause or exc}"
