"""When the online state is checkpointed to a snapshot, and the start from the newest one.

`online/snapshots.py` writes and reads the files; this decides when (every
`snapshot_every_events` events, or `snapshot_every_s` seconds with changes, after a rewrite of
the log below the watermark, at a clean shutdown) and keeps the mark of the newest one."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pulserec.config import Settings
from pulserec.online.base import State
from pulserec.online.snapshots import Snapshots
from pulserec.store import SQLiteStore

if TYPE_CHECKING:
    from pulserec.engine.core import Engine

log = logging.getLogger(__name__)


class Mark(NamedTuple):
    """The newest snapshot: its log watermark, when it was taken or loaded (monotonic), and
    whether the log was rewritten under it since (it cannot be tailed any more)."""

    watermark: int
    when: float
    stale: bool


def restore(state: State, store: SQLiteStore, snapshots: Snapshots | None,
            progress: Callable[[int], None] | None = None) -> State | None:
    """Bring the online state up to date with the log: the newest valid snapshot and the log after
    its watermark (returned: the state to serve), else a full replay into `state` (None)."""
    loaded = snapshots.load(store) if snapshots is not None else None
    if loaded is None:
        state.restore(store, progress)
        return None
    started = time.perf_counter()
    header = snapshots.latest  # type: ignore[union-attr]
    if header["catalog_version"] != store.head()[1]:  # items changed since: the store has them
        loaded.catalog.upsert_many(store.load_items())
    tail = 0
    for frame in store.iter_events(after_seq=header["watermark"]):
        loaded.apply_frame(frame)
        tail += len(frame)
        if progress:
            progress(len(frame))
    log.info("online state from snapshot %s (watermark %d) and %d later events in %.2fs",
             Path(header["path"]).name, header["watermark"], tail, time.perf_counter() - started)
    return loaded


class Checkpoints:
    """The engine's snapshot schedule. `snapshots` is None when they are off (the setting, or a
    shared state: Redis persists itself)."""

    def __init__(self, engine: Engine, settings: Settings, shared: bool) -> None:
        self.engine = engine
        self.settings = settings
        self.snapshots = Snapshots(settings) if settings.snapshots and not shared else None
        self.mark = Mark(0, time.monotonic(), False)

    def started(self) -> None:
        """After the start: the newest snapshot (loaded or found) is the mark."""
        latest = self.snapshots.latest if self.snapshots is not None else None
        self.mark = Mark(latest["watermark"] if latest else 0, time.monotonic(), False)

    def write(self, background: bool = False, durable: bool = True) -> dict[str, Any] | None:
        """Write a snapshot of the online state now (None: a bulk import or another background
        snapshot is running). In the background writers pause only for the capture of the
        state's levels (O(structures); a thread writes the file, `online/snapshots.py`)."""
        if self.snapshots is None:
            raise ValueError("snapshots are off (settings.snapshots) or the state is shared (Redis persists itself)")
        engine = self.engine
        with engine.lock:
            if engine.bulk.running:
                return None
            header = self.snapshots.header(engine.state, engine.store)
            if background:
                if not self.snapshots.write_in_background(engine.state, header):
                    return None
                written = header
            else:
                written = self.snapshots.write(engine.state, header, durable)
            self.mark = Mark(header["watermark"], time.monotonic(), False)
        engine.counters["snapshots.written"] += 1
        return written

    def due(self) -> bool:
        """Whether the settings' triggers call for a snapshot now (events since, or time with changes)."""
        if self.snapshots is None:
            return False
        watermark, when, stale = self.mark
        events = self.engine.state.last_seq - watermark
        if not (events or stale):
            return False
        every_n, every_s = self.settings.snapshot_every_events, self.settings.snapshot_every_s
        return stale or bool(every_n and events >= every_n) or bool(every_s and time.monotonic() - when >= every_s)

    def log_rewritten(self, removes_user: bool = False) -> None:
        """The log was rewritten below the watermark (a deletion, a session merge): the snapshots
        cannot be tailed any more, so a new one is written at the next chance. A deletion also
        removes them (they hold the user)."""
        if self.snapshots is None:
            return
        if removes_user:
            self.snapshots.invalidate()
        self.mark = self.mark._replace(stale=True)

    def on_close(self) -> None:
        """A clean shutdown writes one, so the next start replays nothing."""
        self.write_if_behind()

    def write_if_behind(self, durable: bool = True) -> None:
        """Write one now unless the newest already reflects the state (failures are logged: the
        log has everything, a start without it replays more). `durable=False`: not fsynced
        (`snapshot_file.write_members`)."""
        if self.snapshots is None:
            return
        self.snapshots.wait()
        try:
            if self.mark.watermark != self.engine.state.last_seq or self.mark.stale:
                self.write(durable=durable)
        except Exception:  # noqa: BLE001 - the log has everything; a start without it replays more
            log.exception("could not write a snapshot on shutdown")

    def stats(self) -> dict[str, Any] | None:
        """The newest snapshot for `GET /stats` (None: none written or loaded)."""
        latest = self.snapshots.latest if self.snapshots is not None else None
        if latest is None:
            return None
        return {"watermark": latest["watermark"], "age_s": round(time.time() - latest["created_at"], 1),
                "events": latest["applied"], "bytes": latest["bytes"], "file": Path(latest["path"]).name,
                "events_since": self.engine.state.last_seq - latest["watermark"], "last_error": self.snapshots.last_error}
