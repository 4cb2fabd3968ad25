"""Run the API with uvicorn: in the foreground, or in a background thread (demo, tests)."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from pulserec.engine import Engine
from pulserec.runtime.process import free_port
from pulserec.serving.app import create_app
from pulserec.serving.timeouts import connection_options

log = logging.getLogger(__name__)

class BackgroundServer:
    """uvicorn serving `engine` on host:port from a daemon thread; `stop()` shuts it down."""

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int | None = None, log_level: str = "warning") -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(create_app(engine), host=host, port=self.port, log_level=log_level, access_log=False,
                                **connection_options(engine.settings))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="pulserec-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"HTTP server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _stop_quietly(signum: int, _frame: object) -> None:
    """What uvicorn re-raises a stop signal into once it has shut down gracefully (see below)."""
    log.info("stopped by signal %d", signum)


def run_foreground(app: FastAPI, engine: Engine, host: str, port: int, log_level: str,
                   on_stop: Callable[[], None] | None = None, **config: object) -> None:
    """Serve until SIGINT/SIGTERM, then stop cleanly: `on_stop`, then `engine.close()` (which
    checkpoints the WAL into pulserec.db), and return, so the process exits 0.

    uvicorn shuts down gracefully on those signals, but then restores the handlers it found
    and raises the signal again: with the default handlers the process died there (exit 143)
    before any `finally` ran, and the WAL was never checkpointed. Handlers that only log turn
    that re-raise into a return."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                           **{**connection_options(engine.settings), **config}))
    previous = {sig: signal.signal(sig, _stop_quietly) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if on_stop:
            on_stop()
        engine.close()
