"""An engine whose online state is a replica of the shared SQLite log (several serving processes).

With `pulserec serve --workers N` every worker process opens the same SQLite file (WAL mode:
one writer at a time via BEGIN IMMEDIATE, readers never blocked) and keeps its own online
state. Before every read and after every write a worker *syncs*: one cheap query reads the
last `seq` and two change counters; if another process appended events, it applies them in
`seq` order, exactly as a restart would replay them. So all workers converge on the same
state, and a client that wrote through one worker reads its write through any other.

* Events: applied in `seq` order, also this worker's own (read back after the commit), so no
  worker ever applies events out of order.
* Item upserts: bump a catalogue version; other workers reload the catalogue.
* User deletions: bump a deletion version; every worker rebuilds its state from the log
  (seconds on large logs; deletions are rare). Counters in /stats are per process.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd

from pulserec.engine import Engine
from pulserec.events import Event, event_from_row
from pulserec.online.state import OnlineState
from pulserec.records import ItemRecord

log = logging.getLogger(__name__)

#: A backlog larger than this is applied with the bulk (frame) path instead of event by event.
BULK_BACKLOG = 2_000
#: A read runs on the event loop (Engine.runs_here) only while its sync applies at most this many
#: events (~0.2 ms each): a longer catch-up is left to a thread, as are reloads and rebuilds.
INLINE_BACKLOG = 100
#: Engine methods that answer from the online state: each syncs first.
READ_METHODS = ("recommend", "recommend_session", "similar", "profile", "item", "stats")

F = TypeVar("F", bound=Callable[..., Any])


class ReplicaEngine(Engine):
    """An :class:`Engine` that follows the log written by every process sharing its data dir."""

    _catalog_version = 0
    _deletion_version = 0

    def _rebuild(self, progress: Callable[[int], None] | None = None) -> None:
        # Versions first: a change racing with the rebuild is then seen (again) at the next sync.
        _, self._catalog_version, self._deletion_version = self.store.head()
        super()._rebuild(progress)

    def sync(self) -> None:
        """Bring the online state up to the shared log: one query when nothing changed."""
        with self.lock:
            last_seq, catalog_version, deletion_version = self.store.head()
            if deletion_version != self._deletion_version:
                self._reset()
                return
            if catalog_version != self._catalog_version:
                self._catalog_version = catalog_version
                for record in self.store.load_items():
                    self.state.catalog.upsert(record)
            if last_seq > self.state.last_seq:
                self._apply_log_after(self.state.last_seq, last_seq)

    def _apply_log_after(self, seq: int, last_seq: int) -> None:
        if last_seq - seq > BULK_BACKLOG:
            for frame in self.store.iter_events(after_seq=seq):
                self.state.apply_frame(frame)
            self.state.end_bulk()  # a backlog caught up in frames is a bulk load
            return
        for row in self.store.event_rows_after(seq, last_seq - seq):
            self.state.apply(event_from_row(row[1:]), row[0])

    def _reset(self) -> None:
        """Fresh state rebuilt from the log (after a deletion, possibly by another process), serving
        the same models (trained ones included) re-bound to it, which stop using deleted users."""
        log.info("rebuilding online state after a deletion")
        self.swap_state(OnlineState(self.settings))
        self._rebuild()
        self.deleted_elsewhere(moved=True)

    def runs_here(self, writes: bool = False) -> bool:
        """Writes in a thread: they wait for the other workers' SQLite write lock (busy timeout).
        A read runs here when its sync is one query and a few events, not a catalogue reload or
        a rebuild after another worker's change (one more head query per such read)."""
        if writes or not super().runs_here(writes):
            return False
        last_seq, catalog_version, deletion_version = self.store.head()
        return ((catalog_version, deletion_version) == (self._catalog_version, self._deletion_version)
                and last_seq - self.state.last_seq <= INLINE_BACKLOG)

    def stats(self) -> dict[str, Any]:
        """The base statistics, plus which worker process answered (counters are per process)."""
        return {**super().stats(), "worker_pid": os.getpid()}

    # -- writes: stored by the base class, applied from the log ---------------------------------
    def _apply_stored(self, events: list[Event], seqs: list[int | None]) -> None:
        for event, seq in zip(events, seqs):
            if seq is not None:
                self.counters[f"events.{event.type}"] += 1
        self.sync()

    def apply_stored_frame(self, fresh: pd.DataFrame) -> None:
        self.sync()

    def put_items(self, records: list[ItemRecord]) -> None:
        with self.lock:
            self.sync()
            super().put_items(records)
            _, catalog_version, _ = self.store.head()
            if catalog_version == self._catalog_version + 1:  # only our own upsert since the sync
                self._catalog_version = catalog_version

    def delete_user(self, user_id: str) -> int:
        with self.lock:
            removed = super().delete_user(user_id)
            self._reset()
            return removed


def _synced(method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: ReplicaEngine, *args: Any, **kwargs: Any) -> Any:
        self.sync()
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


for _name in READ_METHODS:
    setattr(ReplicaEngine, _name, _synced(getattr(ReplicaEngine, _name)))
