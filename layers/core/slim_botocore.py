"""Strip botocore's data in a built layer down to the AWS services the gateway calls.

``python slim_botocore.py <dir>``: ``<dir>`` holds the installed ``botocore`` package (the layer's
``python/``). Run by layers/core/Makefile after pip, and by the bench on its layer copy.

Why (decision 0013): creating the first client of a container lists every service directory of
``botocore/data`` (about 440, twice: service model and endpoint rules) and parses the 1.2 MB
``endpoints.json`` for all services, about 35 ms of CPU in each cold start's first request.
Botocore reads only the requested service's entries, so dropping the others changes nothing for
the services kept; a client for a service that is not kept fails with ``UnknownServiceError``,
which tests/unit/test_cold_start.py guards against by checking every ``boto3.client(...)`` call of
the core against ``SERVICES``.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path
from typing import Any

# What aigw creates clients for (table, notifications, credentials/billing via Powertools
# parameters, the Bedrock provider, the table stream that `aigw reports catch-up` reads), and
# what botocore itself may create to find credentials (assume-role, SSO, console login).
SERVICES = frozenset(
    {
        "dynamodb",
        "dynamodbstreams",
        "events",
        "ssm",
        "secretsmanager",
        "bedrock-runtime",
        "sts",
        "sso",
        "sso-oidc",
        "signin",
    }
)
# Documentation only: botocore never loads them to make a call.
DOC_ONLY = ("examples-1.json",)


def _service_model(version_dir: Path) -> dict[str, Any] | None:
    packed, plain = version_dir / "service-2.json.gz", version_dir / "service-2.json"
    if packed.exists():
        model: dict[str, Any] = json.loads(gzip.decompress(packed.read_bytes()))
        return model
    if plain.exists():
        model = json.loads(plain.read_text(encoding="utf-8"))
        return model
    return None


def slim(site_packages: Path, services: frozenset[str] = SERVICES) -> None:
    data = site_packages / "botocore" / "data"
    if not data.is_dir():
        raise SystemExit(f"no botocore data under {site_packages}")
    endpoint_prefixes = set(services)
    for service_dir in sorted(p for p in data.iterdir() if p.is_dir()):
        if service_dir.name not in services:
            shutil.rmtree(service_dir)
            continue
        for version_dir in service_dir.iterdir():
            for name in DOC_ONLY:
                (version_dir / name).unlink(missing_ok=True)
            model = _service_model(version_dir)
            if model is not None:
                endpoint_prefixes.add(model["metadata"].get("endpointPrefix", service_dir.name))
    missing = services - {p.name for p in data.iterdir() if p.is_dir()}
    if missing:
        raise SystemExit(f"botocore has no data for {sorted(missing)}")
    endpoints_file = data / "endpoints.json"
    endpoints = json.loads(endpoints_file.read_text(encoding="utf-8"))
    for partition in endpoints["partitions"]:
        partition["services"] = {
            name: entry for name, entry in partition["services"].items() if name in endpoint_prefixes
        }
    endpoints_file.write_text(json.dumps(endpoints, separators=(",", ":")), encoding="utf-8")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    slim(Path(sys.argv[1]))
