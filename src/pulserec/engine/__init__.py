"""The engine and what runs beside it: `core.py` holds the Engine (one lock; the write and read
paths), the other modules its parts (training, rebuilds, checkpoints, health, bulk ingest, views)."""

from pulserec.engine.core import STATE_UNAVAILABLE, Engine, IngestListener, IngestResult, StoredNotApplied

__all__ = ["STATE_UNAVAILABLE", "Engine", "IngestListener", "IngestResult", "StoredNotApplied"]
