"""The engine and what runs beside it: `core.py` holds the Engine (one lock; the write and read
paths), the other modules its parts (training, rebuilds, checkpoints, health, bulk ingest, sessions, views)
and what its write path answers (writes)."""

from typing import Any

from pulserec.engine.core import Engine
from pulserec.engine.writes import IngestListener, IngestResult, StoredNotApplied, state_unavailable


def __getattr__(name: str) -> Any:
    """`STATE_UNAVAILABLE` on first use (it imports the redis client: engine/writes.py)."""
    if name == "STATE_UNAVAILABLE":
        return state_unavailable()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["STATE_UNAVAILABLE", "Engine", "IngestListener", "IngestResult", "StoredNotApplied", "state_unavailable"]
