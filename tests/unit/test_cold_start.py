"""What a cold start loads (docs/cold-start.md): no timings here, only which modules a fresh
Lambda process imports, and that the layer's trimmed botocore data still serves every client."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from aigw_local import template as tpl

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "layers" / "core"

# Heavy modules no handler needs at import; each loads on the path that uses it.
NEVER_AT_IMPORT = ("jsonschema", "aigw.cli", "aigw.prompt_apis.invoke", "aws_xray_sdk")
# Per function: what its normal path never uses (or, for prompt APIs, only calls use).
NOT_AT_IMPORT: dict[str, tuple[str, ...]] = {
    # Static pages, every route public: no key lookup, so no table and no boto3 (Powertools
    # imports the bare botocore package for its user agent, not the client machinery).
    "PortalFunction": ("stripe", "httpx", "aigw.keys", "aigw.table", "boto3", "botocore.client"),
    # Catalog, design, lifecycle, sharing: only POST /apis/{slug} (and dry runs) call a model.
    "PromptApisFunction": ("stripe", "httpx", "aigw.invocation", "aigw.billing.meter", "aigw.providers"),
    "InvokeFunction": ("stripe",),
    "MessagesFunction": ("stripe",),
    "StripeWebhookFunction": ("aigw.invocation", "aigw.providers"),
    "BillingFunction": ("stripe", "httpx", "aigw.invocation"),
    "MeterReportFunction": ("httpx", "aigw.invocation"),
}
NO_MODEL_CALLS = ("stripe", "httpx", "aigw.invocation", "aigw.providers")
# What must be loaded at import where the path needs it: moving it to the first request only
# shifts the cost (the bench reports both).
AT_IMPORT: dict[str, tuple[str, ...]] = {
    "InvokeFunction": ("aigw.invocation", "aigw.table", "boto3", "httpx"),
    "CatalogAdminFunction": ("aigw.table", "boto3"),
    "StripeWebhookFunction": ("stripe", "aigw.table"),
}

PROBE = r"""
import importlib, json, os, sys
connects = []
sys.addaudithook(lambda event, args: connects.append(repr(args[1])) if event == "socket.connect" else None)
sys.path[:0] = [os.environ["PROBE_LAYER"], os.environ["PROBE_FUNCTION_DIR"]]
importlib.import_module(os.environ["PROBE_MODULE"])
print(json.dumps({"modules": sorted(sys.modules), "connects": connects}))
"""


def _probe() -> dict[str, dict[str, list[str]]]:
    """Every function of template.yaml imported in its own fresh process, all at once."""
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "TABLE_NAME": "aigw-test",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PROBE_LAYER": str(CORE),
    }
    running = {}
    for spec in tpl.functions(tpl.load()):
        module = spec.handler.rpartition(".")[0]
        running[spec.logical_id] = subprocess.Popen(
            [sys.executable, "-c", PROBE],
            env={**env, "PROBE_FUNCTION_DIR": str(spec.code_uri), "PROBE_MODULE": module},
            cwd=spec.code_uri,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    found = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"{name} failed to import:\n{err[-2000:]}"
        found[name] = json.loads(out.strip().splitlines()[-1])
    return found


@pytest.fixture(scope="module")
def probed() -> dict[str, dict[str, list[str]]]:
    return _probe()


@pytest.fixture(scope="module")
def loaded(probed: dict[str, dict[str, list[str]]]) -> dict[str, set[str]]:
    return {name: set(found["modules"]) for name, found in probed.items()}


def test_no_function_opens_a_connection_while_it_loads(probed: dict[str, dict[str, list[str]]]) -> None:
    """Under SnapStart the process is snapshotted after init: a connection opened then would be
    stale in every restored copy (docs/cold-start.md). Init connects to nothing."""
    assert {name: found["connects"] for name, found in probed.items() if found["connects"]} == {}


def _has(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def test_no_function_imports_what_its_path_never_uses(loaded: dict[str, set[str]]) -> None:
    assert set(NOT_AT_IMPORT) <= set(loaded)
    found = {}
    for name, modules in loaded.items():
        unwanted = NEVER_AT_IMPORT + NOT_AT_IMPORT.get(name, NO_MODEL_CALLS)
        extra = [m for m in unwanted if _has(modules, m)]
        if extra:
            found[name] = extra
    assert found == {}


def test_what_the_path_needs_is_loaded_at_import_not_in_the_first_request(
    loaded: dict[str, set[str]],
) -> None:
    missing = {name: [m for m in wanted if not _has(loaded[name], m)] for name, wanted in AT_IMPORT.items()}
    assert {name: m for name, m in missing.items() if m} == {}


# ---- the layer's botocore data (layers/core/slim_botocore.py) --------------------------------


def _slim_botocore() -> ModuleType:
    spec = importlib.util.spec_from_file_location("slim_botocore", CORE / "slim_botocore.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _client_services_in_core() -> set[str]:
    """Services the core creates clients for: ``boto3.client("name", ...)`` calls, and the
    Powertools parameters helpers (SSM parameters, Secrets Manager secrets)."""
    services = set()
    helpers = {"get_parameter": "ssm", "get_parameters": "ssm", "get_secret": "secretsmanager"}
    for path in (CORE / "aigw").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            target = node.func.value
            if node.func.attr == "client" and isinstance(target, ast.Name) and target.id == "boto3":
                first = node.args[0] if node.args else None
                assert isinstance(first, ast.Constant), f"{path}: service name must be a literal"
                services.add(str(first.value))
            elif isinstance(target, ast.Name) and target.id == "parameters" and node.func.attr in helpers:
                services.add(helpers[node.func.attr])
    return services


def test_every_service_the_core_calls_is_kept_in_the_layer() -> None:
    used = _client_services_in_core()
    assert {"dynamodb", "events", "bedrock-runtime", "ssm", "secretsmanager"} <= used
    assert used <= _slim_botocore().SERVICES


@pytest.fixture(scope="module")
def slimmed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This machine's botocore data, cut as the Makefile cuts the layer's."""
    slim = _slim_botocore()
    full = Path(botocore.__file__).parent / "data"
    site = tmp_path_factory.mktemp("layer")
    data = site / "botocore" / "data"
    data.mkdir(parents=True)
    for item in full.iterdir():
        if item.is_file():
            shutil.copy(item, data / item.name)
        elif item.name in slim.SERVICES or item.name == "sqs":
            shutil.copytree(item, data / item.name)
    slim.slim(site)
    return data


def _session(data: Path | None) -> botocore.session.Session:
    session = botocore.session.Session()
    if data is not None:
        loader = Loader(extra_search_paths=[str(data)], include_default_search_paths=False)
        session.register_component("data_loader", loader)
    session.set_credentials("testing", "testing")
    return session


def test_trimmed_botocore_data_resolves_kept_services_as_the_full_data_does(slimmed: Path) -> None:
    assert json.loads((slimmed / "endpoints.json").read_text())["partitions"]
    full, trimmed = _session(None), _session(slimmed)
    for service in sorted(_slim_botocore().SERVICES):
        for region in ("us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1"):
            expected = full.create_client(service, region_name=region)
            got = trimmed.create_client(service, region_name=region)
            assert (got.meta.endpoint_url, got.meta.region_name, got.meta.partition) == (
                expected.meta.endpoint_url,
                expected.meta.region_name,
                expected.meta.partition,
            ), (service, region)


def test_trimmed_botocore_data_has_no_other_service(slimmed: Path) -> None:
    assert not (slimmed / "sqs").exists()
    with pytest.raises(UnknownServiceError):
        _session(slimmed).create_client("sqs", region_name="us-east-1")
