"""`pulserec serve --workers N`: several uvicorn worker processes over one data dir.

Each worker builds its app with :func:`pulserec.serving.app.app_from_env` and follows the
shared SQLite log (:mod:`pulserec.replica`), so every worker answers from the same, fresh state."""

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
    """The env vars that make every worker load these settings and follow the shared log."""
    return {"PULSEREC_DATA_DIR": str(settings.data_dir.resolve()), "PULSEREC_FOLLOW_LOG": "1"}


def run_workers(settings: Settings, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve with `workers` processes (blocks until uvicorn's supervisor stops)."""
    import uvicorn

    os.environ.update(worker_environment(settings))
    uvicorn.run(APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level=log_level)
