"""`pulserec serve --workers N`: several uvicorn worker processes over one data dir.

Each worker builds its app with :func:`pulserec.serving.app.app_from_env`. With a Redis state
(`--state redis://...`) every worker reads and writes the shared state; with the embedded
state each worker follows the shared SQLite log (:mod:`pulserec.replica`). Either way every
worker answers from the same, fresh state."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket

from pulserec.config import Settings
from pulserec.serving.malloc import limit_malloc_arenas
from pulserec.serving.timeouts import connection_options
from pulserec.store import SQLiteStore
from pulserec.store.pseudonym import Pseudonymizer

APP_FACTORY = "pulserec.serving.app:app_from_env"


def prepare_data_dir(settings: Settings) -> int:
    """Create the store (schema, WAL) and the pseudonym key once, before workers race to.

    Returns the number of stored events."""
    store = SQLiteStore(settings.db_path, settings.sqlite_synchronous, settings.accept_data_loss)
    try:
        count = store.event_count()
    finally:
        store.close()
    if settings.pseudonymize_users:
        Pseudonymizer.from_settings(settings)  # fails here, once, when no key is configured
    return count


def worker_environment(settings: Settings) -> dict[str, str]:
    """The env vars that make every worker load these settings: with a shared Redis state every
    worker attaches to it; with the embedded state every worker follows the shared SQLite log."""
    env = {"PULSEREC_DATA_DIR": str(settings.data_dir.resolve()), "PULSEREC_STATE_URL": settings.state_url,
           "PULSEREC_STATE_NAMESPACE": settings.state_namespace, "PULSEREC_STREAM_URL": settings.stream_url}
    env["PULSEREC_FOLLOW_LOG"] = "0" if settings.state_url else "1"
    return env


def run_workers(settings: Settings, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve with `workers` processes; blocks until they stop (SIGINT/SIGTERM stop them all).

    Where the OS has SO_REUSEPORT, each worker listens on its own socket bound to the same port
    and the kernel spreads new connections evenly over them. (With one shared listening socket,
    whichever worker wakes first accepts a burst of connections, and keep-alive clients then
    stay pinned to it: one busy worker, one idle.) Elsewhere uvicorn's own supervisor is used."""
    import uvicorn

    os.environ.update(worker_environment(settings))
    if not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level,
                    **connection_options(settings))
        return
    _reuse_port_socket(host, port).close()  # fail here, clearly, if the port is taken
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_serve_worker, args=(host, port, log_level), name=f"pulserec-worker-{i}")
                 for i in range(workers)]
    for process in processes:
        process.start()

    def stop(signum: int, _frame: object) -> None:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn shuts down gracefully

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while all(p.is_alive() for p in processes):
            processes[0].join(timeout=0.5)
        stop(signal.SIGTERM, None)  # one worker died: take the others down with it
        for process in processes:
            process.join(timeout=10)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [p.exitcode for p in processes if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        raise SystemExit(f"a worker exited with status {failed[0]}")


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _serve_worker(host: str, port: int, log_level: str) -> None:  # runs in a worker process
    import uvicorn

    _die_with_parent()
    limit_malloc_arenas()
    sock = _reuse_port_socket(host, port)
    options = connection_options(Settings.load())  # the settings come from the env (worker_environment)
    server = uvicorn.Server(uvicorn.Config(APP_FACTORY, factory=True, log_level=log_level, access_log=False, **options))
    server.run(sockets=[sock])


def _die_with_parent() -> None:
    """Linux: get SIGTERM when the supervising process dies, so no worker outlives it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
