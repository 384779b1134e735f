"""Wires the pieces: environment from the template, DynamoDB Local, the table, demo keys."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aigw_local import template as tpl

LOCAL_DIR = tpl.ROOT / ".local"
DEMO_KEYS_FILE = LOCAL_DIR / "demo-keys.json"
ENV_FILE = tpl.ROOT / ".env.local"
TABLE_NAME = "aigw-local"
DEMO_TEAM = "demo"
# Developer settings taken from the shell: provider keys and URLs, retry and timeout knobs.
PASSED_THROUGH = (
    "OPENAI_",
    "AZURE_OPENAI_",
    "ANTHROPIC_",
    "GEMINI_",
    "MISTRAL_",
    "BEDROCK_",
    "GROQ_",
    "TOGETHER_",
    "DEEPSEEK_",
    "OLLAMA_",
    "VLLM_",
    "UPSTREAM_",
    "TIKTOKEN_",
    "STRIPE_",
)
# Locally every team without a subscription is on this plan, so a newcomer's calls just work;
# a deployment decides with the DefaultPlan parameter (empty by default: 402 no_subscription).
LOCAL_DEFAULT_PLAN = "local-free"
# What a 402's fix link and the portal's Subscribe button buy locally (CHECKOUT_PLAN), and the
# credit pack offered when credits run out (CREDITS_PLAN); with Stripe test keys, prices with
# these lookup keys must exist in the Stripe account.
LOCAL_CHECKOUT_PLAN = "local-pro"
LOCAL_CREDITS_PLAN = "local-credits"
SIMULATOR_KEY_PREFIX = "sk_test_aigwsim_"


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """KEY=VALUE lines of the git-ignored .env.local (provider keys and the like)."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def _resolve(value: Any, parameters: dict[str, Any], refs: dict[str, str]) -> str | None:
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        if name in refs:
            return refs[name]
        if name in parameters and "Default" in parameters[name]:
            return str(parameters[name]["Default"])
    return None  # other intrinsics mean nothing locally


def local_environment(template: dict[str, Any], *, table_name: str, endpoint: str) -> dict[str, str]:
    """The Lambda environment the template declares, made local.

    Template defaults first, then the developer's shell and .env.local (which win), then what
    must point at local services. SSM parameter names are dropped unless set explicitly:
    locally, provider keys come from the environment.
    """
    parameters = template.get("Parameters", {})
    refs = {"GatewayTable": table_name, "Stage": "local"}
    env: dict[str, str] = {}
    for spec in tpl.functions(template):
        for name, raw in spec.environment.items():
            value = _resolve(raw, parameters, refs)
            if value is not None and not name.endswith("_PARAMETER"):
                env[name] = value
    overrides = {
        **read_env_file(),
        **{k: v for k, v in os.environ.items() if k in env or k.startswith(PASSED_THROUGH)},
    }
    env.update(overrides)
    if "EVENT_BUS_NAME" not in os.environ:
        env.pop("EVENT_BUS_NAME", None)  # no EventBridge locally: notifications are logged
    if not env.get("DEFAULT_PLAN"):
        env["DEFAULT_PLAN"] = LOCAL_DEFAULT_PLAN
    if not env.get("CHECKOUT_PLAN"):
        env["CHECKOUT_PLAN"] = LOCAL_CHECKOUT_PLAN
    if not env.get("CREDITS_PLAN"):
        env["CREDITS_PLAN"] = LOCAL_CREDITS_PLAN
    if not env.get("STRIPE_WEBHOOK_SECRET"):
        # Without Stripe, webhooks are verified against a per-run secret: everything unsigned is
        # a 400, as deployed. 'stripe listen' users put their whsec_ in .env.local instead.
        env["STRIPE_WEBHOOK_SECRET"] = "whsec_local_" + secrets.token_urlsafe(24)
    if not env.get("BILLING_LINK_SECRET"):
        # Billing links in 402 answers are signed; locally a per-run key is enough.
        env["BILLING_LINK_SECRET"] = secrets.token_urlsafe(32)
    if not env.get("MPP_CHALLENGE_SECRET"):
        # Machine payment challenges are bound by HMAC (Secrets Manager when deployed): per run here.
        env["MPP_CHALLENGE_SECRET"] = secrets.token_urlsafe(32)
    env.update(
        {
            "TABLE_NAME": table_name,
            "DYNAMODB_ENDPOINT": endpoint,
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
        }
    )
    return env


@dataclass(frozen=True)
class DemoKeys:
    admin_key: str
    team_id: str
    team_key: str


def seed_local_plan() -> None:
    """The plans of a local run: the one every team without a subscription is on
    (``LOCAL_DEFAULT_PLAN``), the one a fix link buys and a credit pack. Made once: an admin's
    changes to them stay."""
    from aigw.billing import plans
    from aigw.errors import NotFound

    seeded = {
        LOCAL_DEFAULT_PLAN: plans.PlanSpec(
            name="Local free plan", monthly_tokens=5_000_000, requests_per_minute=600
        ),
        LOCAL_CHECKOUT_PLAN: plans.PlanSpec(
            name="Local Pro", monthly_tokens=50_000_000, requests_per_minute=600
        ),
        LOCAL_CREDITS_PLAN: plans.PlanSpec(
            name="Local credits, $10", kind="credits", credits_micro_usd=10_000_000
        ),
    }
    for plan_id, spec in seeded.items():
        try:
            plans.get_plan(plan_id)
        except NotFound:
            plans.put_plan(plan_id, spec)


def seed_demo(path: Path | None = DEMO_KEYS_FILE, *, force: bool = False) -> DemoKeys:
    """Create (once) an admin key and a demo team with a key; remembered in ``path`` (under
    .local/, git-ignored) because only hashes are stored in the table. ``None``: remember nothing."""
    seed_local_plan()  # also for data kept from before billing existed
    if path is not None and path.exists() and not force:
        data = json.loads(path.read_text(encoding="utf-8"))
        return DemoKeys(**data)
    from aigw import keys, teams
    from aigw.bootstrap import bootstrap_admin
    from aigw.errors import Conflict

    admin = bootstrap_admin(name="local demo admin")
    with contextlib.suppress(Conflict):
        teams.create_team(DEMO_TEAM, "Demo team")
    member = keys.create_key(DEMO_TEAM, name="local demo key")
    demo = DemoKeys(admin_key=admin.secret, team_id=DEMO_TEAM, team_key=member.secret)
    if path is None:
        return demo
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(demo.__dict__, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return demo


# ---- services the runner stands in for ------------------------------------------------------


@dataclass(frozen=True)
class LocalServices:
    """What the runner serves beside the template's routes, and how it was configured."""

    mounts: dict[str, Any]
    stripe_simulated: bool
    environment: dict[str, str]


def local_services(
    env: dict[str, str],
    *,
    internal_base: str,
    state_file: Path,
    log: Any = None,
) -> LocalServices:
    """The Stripe simulator (unless ``STRIPE_API_KEY`` is set) and the EventBridge stand-in,
    mounted on the runner's own port, and the environment that points the core at them."""
    from aigw_local import eventbridge, stripe_sim
    from aigw_local.stripe_sim.store import Store

    store = Store(state_file)
    extra: dict[str, str] = {}
    if not env.get("EVENT_BUS_NAME"):  # a bus named in the shell is a real one: leave it be
        extra = {
            "EVENT_BUS_NAME": eventbridge.BUS_NAME,
            "AWS_ENDPOINT_URL_EVENTBRIDGE": internal_base + eventbridge.PREFIX,
        }
    mounts: dict[str, Any] = {eventbridge.PREFIX: eventbridge.LocalEventBus(store, log=log).handle}
    simulated = not env.get("STRIPE_API_KEY") or env["STRIPE_API_KEY"].startswith(SIMULATOR_KEY_PREFIX)
    if simulated:
        api_key = SIMULATOR_KEY_PREFIX + secrets.token_urlsafe(18)
        extra.update(STRIPE_API_KEY=api_key, STRIPE_API_BASE=internal_base + stripe_sim.PREFIX)
        simulator = stripe_sim.Simulator(
            store,
            internal_base=internal_base,
            api_key=api_key,
            webhook_secret=lambda: os.environ["STRIPE_WEBHOOK_SECRET"],
            log=log,
        )
        mounts[stripe_sim.PREFIX] = simulator.handle
    return LocalServices(mounts=mounts, stripe_simulated=simulated, environment=extra)
