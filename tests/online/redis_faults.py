"""A redis-server the fault tests may kill -9, SIGSTOP and restart on the same port, with or
without an append-only file; and the checks they end with."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from pulserec.serving.server import free_port


class RedisProcess:
    """redis-server on 127.0.0.1:<port> in `directory`; AOF (fsync every second) when `aof`."""

    def __init__(self, directory: Path, aof: bool) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.directory, self.aof, self.port = directory, aof, free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.aof else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *persistence,
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except (redis.ConnectionError, redis.BusyLoadingError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        """kill -9: no chance to save anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)  # a stopped process must not linger
        self.process.kill()
        self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)  # type: ignore[union-attr]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()
