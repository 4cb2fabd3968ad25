"""`pulserec serve` as a child process (crash tests, load benchmarks): start, wait, kill, measure."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now (the OS picks it; another process may take it before use)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


SRC_DIR = Path(__file__).resolve().parents[2]


class ServerProcess:
    """`python -m pulserec.cli.main serve` in its own process group, on 127.0.0.1."""

    def __init__(self, data_dir: Path, workers: int = 1, port: int | None = None,
                 env: dict[str, str] | None = None, log_path: Path | None = None, log_level: str = "warning") -> None:
        self.data_dir = Path(data_dir)
        self.log_level = log_level
        self.workers = workers
        self.port = port or free_port()
        self.env = {**os.environ, "PYTHONPATH": f"{SRC_DIR}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                    **(env or {})}
        self.log_path = log_path or self.data_dir.parent / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start the server and wait until /health answers (raises with the log tail if it does not)."""
        command = [sys.executable, "-m", "pulserec.cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--workers", str(self.workers), "--log-level", self.log_level]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._healthy():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the server and its workers (its own process group), then reap it."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), SIGKILL if it does not exit within 15 s."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def rss_bytes(self) -> int:
        """Resident memory of the server and all its descendants (the workers), from /proc."""
        if self.process is None:
            return 0
        return sum(_rss(pid) for pid in _descendants(self.process.pid))

    def connection_per_worker(self, attempts: int = 200) -> list[httpx.Client]:
        """One keep-alive connection to each worker process (the kernel picks the worker per
        connection, so new connections are opened until every worker's pid was seen)."""
        found: dict[int, httpx.Client] = {}
        for _ in range(attempts):
            client = httpx.Client(base_url=self.url, timeout=10)
            pid = client.get("/stats").json()["worker_pid"]
            if pid in found:
                client.close()
            else:
                found[pid] = client
            if len(found) == self.workers:
                return list(found.values())
        for client in found.values():
            client.close()
        raise AssertionError(f"reached only {len(found)} of {self.workers} workers in {attempts} connections")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _descendants(root: int) -> list[int]:
    """`root` and every process below it (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
