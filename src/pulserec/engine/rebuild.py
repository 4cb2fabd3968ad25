"""Rebuilding the online state from the log while serving goes on (`POST /admin/rebuild`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from pulserec.online.base import SharedState
from pulserec.online.state import OnlineState
from pulserec.recommend.jobs import Job, Report, replay_progress
from pulserec.store import SQLiteStore

if TYPE_CHECKING:
    from pulserec.engine.core import Engine


class Rebuilds:
    """One rebuild at a time (the job registry's target `online-state`), each with its own list
    of the users deleted while it runs, so that no rebuild resets another's (issue 13.6)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._deletions: list[list[tuple[str, pd.DataFrame]]] = []

    def start(self) -> Job:
        """Rebuild in the background; raises jobs.Busy or jobs.TooManyJobs."""
        return self.engine.jobs.start("rebuild", ("online-state",), lambda report: self.rebuild(report))

    def user_deleted(self, key: str, removed: pd.DataFrame) -> None:
        """Called under the engine lock by every deletion: running rebuilds forget the user too."""
        for deleted in self._deletions:
            deleted.append((key, removed))

    def _fresh_state(self, source: SQLiteStore, upto_seq: int, report: Report | None = None) -> OnlineState:
        """A new in-memory state built from `source` (a snapshot of the log) up to `upto_seq`."""
        state = OnlineState(self.engine.settings)
        state.load(source, upto_seq=upto_seq, progress=replay_progress(report, source.event_count()))
        return state

    def rebuild(self, report: Report | None = None) -> dict[str, Any]:
        """Rebuild the online state from the log, then swap it in atomically.

        It replays a snapshot of the log (one read transaction) opened under the engine lock, so
        every user deletion is either before it (not in the snapshot) or after it and recorded in
        this rebuild's own deletion list: those users' snapshot events are forgotten from the new
        state before the events stored meanwhile are applied (a user who came back after the
        deletion keeps the new events). Every served model is carried over, so nothing accepted
        is lost, nothing deleted returns, and readers never see a half-built state."""
        engine = self.engine
        started = time.perf_counter()
        if engine.state.shared:  # a shared (Redis) state rebuilds in place; its forget is per event
            cast(SharedState, engine.state).rebuild(engine.store)
            engine.counters["state.rebuilds"] += 1
            return {"events": engine.state.applied, "reapplied_during_build": 0, "seconds": round(time.perf_counter() - started, 3)}
        deleted: list[tuple[str, pd.DataFrame]] = []
        with engine.lock:  # the snapshot's read transaction starts here, between two deletions
            snapshot = engine.store.snapshot()
            watermark = snapshot.max_seq()
            self._deletions.append(deleted)
        try:
            try:
                fresh = self._fresh_state(snapshot, watermark, report)
            finally:
                snapshot.close()
            if deleted:  # the snapshot kept their pages in the WAL: clear them now
                engine.store.checkpoint()
            with engine.lock:
                late = self._catch_up(fresh, watermark, deleted)
                engine.swap_state(fresh)
        finally:
            with engine.lock:
                self._deletions = [d for d in self._deletions if d is not deleted]
        engine.counters["state.rebuilds"] += 1
        return {"events": fresh.applied, "reapplied_during_build": late, "seconds": round(time.perf_counter() - started, 3)}

    def _catch_up(self, fresh: OnlineState, watermark: int, deleted: list[tuple[str, pd.DataFrame]]) -> int:
        """Under the lock: forget the users deleted during the build, take the catalogue changes
        and the events stored meanwhile; returns how many events were re-applied."""
        store = self.engine.store
        for key, removed in deleted:
            fresh.forget(key, removed[removed["seq"] <= watermark])
        for record in store.load_items():
            fresh.catalog.upsert(record)
        late = 0
        for frame in store.iter_events(after_seq=watermark):
            fresh.apply_frame(frame)
            late += len(frame)
        return late
