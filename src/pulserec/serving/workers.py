"""`pulserec serve --workers N`: several uvicorn worker processes over one data dir.

Each worker builds its app with :func:`pulserec.serving.app.app_from_env`. With a Redis state
(`--state redis://...`) every worker reads and writes the shared state; with the embedded
state each worker follows the shared SQLite log (:mod:`pulserec.replica`). Either way every
worker answers from the same, fresh state."""

from __future__ import annotations

import os

from pulserec.config import Settings
from pulserec.store import SQLiteStore
from pulserec.store.pseudonym import Pseudonymizer

APP_FACTORY = "pulserec.serving.app:app_from_env"


def prepare_data_dir(settings: Settings) -> int:
    """Create the store (schema, WAL) and the pseudonym key once, before workers race to.

    Returns the number of stored events."""
    store = SQLiteStore(settings.db_path, settings.sqlite_synchronous)
    try:
        count = store.event_count()
    finally:
        store.close()
    if settings.pseudonymize_users:
        Pseudonymizer.for_data_dir(settings.data_dir)
    return count


def worker_environment(settings: Settings) -> dict[str, str]:
    """The env vars that make every worker load these settings: with a shared Redis state every
    worker attaches to it; with the embedded state every worker follows the shared SQLite log."""
    env = {"PULSEREC_DATA_DIR": str(settings.data_dir.resolve()), "PULSEREC_STATE_URL": settings.state_url,
           "PULSEREC_STATE_NAMESPACE": settings.state_namespace, "PULSEREC_STREAM_URL": settings.stream_url}
    env["PULSEREC_FOLLOW_LOG"] = "0" if settings.state_url else "1"
    return env


def run_workers(settings: Settings, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve with `workers` processes (blocks until uvicorn's supervisor stops)."""
    import uvicorn

    os.environ.update(worker_environment(settings))
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level)
