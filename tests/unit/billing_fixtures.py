"""Fixtures shared by the billing unit tests: a team with no default plan, Stripe's webhook
secret, and operator notifications captured through EventBridge into an SQS queue (moto)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from aigw import keys, teams
from aigw.billing import plans
from tests.conftest import reset_core
from tests.helpers import ledger
from tests.helpers.stripe import WEBHOOK_SECRET

CHAT = "/v1/chat/completions"
HELLO = {"model": "mock/echo", "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 50}

Notes = Callable[[], list[tuple[str, dict[str, Any]]]]


@pytest.fixture
def billing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment where teams need a subscription, plan or credits (no default plan)."""
    monkeypatch.delenv("DEFAULT_PLAN", raising=False)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("BILLING_LINK_SECRET", "link-secret-for-tests")
    monkeypatch.setenv("GRACE_PERIOD_SECONDS", "3600")
    monkeypatch.setenv("CHECKOUT_PLAN", "pro-monthly")
    monkeypatch.setenv("CREDITS_PLAN", "credits-10")
    reset_core()
    plans.put_plan("pro-monthly", plans.PlanSpec(name="Pro", monthly_tokens=100_000))
    plans.put_plan("credits-10", plans.PlanSpec(kind="credits", credits_micro_usd=10_000_000))


@pytest.fixture
def acme_key(billing_env: None) -> Iterator[str]:
    """A key of team ``acme``; after the test, the team's counters must equal its records."""
    teams.create_team("acme")
    yield keys.create_key("acme", name="test").secret
    ledger.assert_agrees("acme")


@pytest.fixture
def notes(monkeypatch: pytest.MonkeyPatch) -> Notes:
    """Billing notifications as an operator's subscriber would receive them."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="billing-notes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="billing", EventPattern=json.dumps({"source": ["aigw.billing"]}))
    events.put_targets(Rule="billing", Targets=[{"Id": "q", "Arn": arn}])
    monkeypatch.setenv("EVENT_BUS_NAME", "default")
    reset_core()

    def received() -> list[tuple[str, dict[str, Any]]]:
        out = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return out
            for message in batch:
                body = json.loads(message["Body"])
                out.append((body["detail-type"], body["detail"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])

    return received
