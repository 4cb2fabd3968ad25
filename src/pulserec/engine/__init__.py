"""The engine and what runs beside it: `core.py` holds the Engine (one lock; the write and read
paths), the other modules its parts (training, rebuilds, checkpoints, health, bulk ingest, sessions, views)
and what its write path answers (writes)."""

from pulserec.engine.core import Engine
from pulserec.engine.writes import STATE_UNAVAILABLE, IngestListener, IngestResult, StoredNotApplied

__all__ = ["STATE_UNAVAILABLE", "Engine", "IngestListener", "IngestResult", "StoredNotApplied"]
