"""The engine: durable store + online state + recommendation service, behind one lock.

Write path: validate -> append to the store (one transaction, deduplicated by event_id) ->
apply each newly stored event to the online state -> acknowledge. A restart rebuilds the
online state from the log, so nothing acknowledged is ever lost."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pulserec.config import Settings
from pulserec.events import SESSION_PREFIX, Event
from pulserec.online import make_state
from pulserec.online.catalog import ItemRecord
from pulserec.online.stream import make_publisher
from pulserec.serving.service import Answer, Filters, Recommended, RecommendationService
from pulserec.store import SQLiteStore
from pulserec.store.pseudonym import Pseudonymizer

log = logging.getLogger(__name__)


class UnknownEventType(ValueError):
    def __init__(self, index: int | None, event_type: str, known: Iterable[str]) -> None:
        self.index = index
        self.event_type = event_type
        super().__init__(f"unknown event type {event_type!r}; known types: {', '.join(sorted(known))}")


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    event_ids: list[str]
    accepted_mask: list[bool]


class Engine:
    def __init__(self, settings: Settings, store: SQLiteStore | None = None, progress: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = store or SQLiteStore(settings.db_path, settings.sqlite_synchronous)
        self.lock = threading.RLock()
        self.state = make_state(settings)
        self.publisher = make_publisher(settings)
        # With a shared state and a stream, `pulserec updater` applies what this process publishes.
        self.applies_locally = not (self.publisher and self.state.shared)
        self.service = RecommendationService(self.state, settings)
        self.pseudonym = Pseudonymizer.for_data_dir(settings.data_dir) if settings.pseudonymize_users else None
        self.counters: Counter[str] = Counter()
        self.started_at = time.time()
        self._rebuild(progress)

    # -- lifecycle --------------------------------------------------------------------------
    def _rebuild(self, progress: Callable[[int], None] | None = None) -> None:
        """Bring the online state up to date with the log (a full replay for in-memory state)."""
        self.state.restore(self.store, progress)

    def close(self) -> None:
        self.store.close()
        self.state.close()
        if self.publisher:
            self.publisher.close()

    # -- ids --------------------------------------------------------------------------------
    def user_key(self, user_id: str) -> str:
        """The id under which a user is stored (a pseudonym when pseudonymisation is on)."""
        return self.pseudonym(user_id) if self.pseudonym else user_id

    # -- writes -----------------------------------------------------------------------------
    def check_types(self, events: Iterable[Event]) -> None:
        weights = self.settings.event_weights
        for i, event in enumerate(events):
            if event.type not in weights:
                raise UnknownEventType(i, event.type, weights)

    def ingest(self, events: list[Event]) -> IngestResult:
        """Store and apply a batch atomically (all stored, or none); duplicates are skipped."""
        self.check_types(events)
        if self.pseudonym:
            events = [e._replace(user_id=self.user_key(e.user_id)) if e.user_id else e for e in events]
        with self.lock:
            seqs = self.store.append_events([e.row() for e in events])
            fresh = [(event, seq) for event, seq in zip(events, seqs) if seq is not None]
            self._apply_or_publish(fresh)
            for event, _ in fresh:
                self.counters[f"events.{event.type}"] += 1
        accepted = sum(s is not None for s in seqs)
        self.counters["events.accepted"] += accepted
        self.counters["events.duplicate"] += len(events) - accepted
        return IngestResult(accepted, len(events) - accepted, [e.event_id for e in events], [s is not None for s in seqs])

    def _apply_or_publish(self, fresh: list[tuple[Event, int]]) -> None:
        """Publish stored events to the stream (if any) and apply them here unless the updater will.

        If publishing fails the events are applied here instead (applying is idempotent)."""
        local = self.applies_locally
        if self.publisher and fresh:
            try:
                self.publisher.publish(fresh)
            except Exception:  # noqa: BLE001 - the events are stored; apply them here instead
                log.exception("could not publish %d events to the stream; applying them in-process", len(fresh))
                local = True
        if local:
            self.state.apply_many(fresh)

    def ingest_frame(self, frame: pd.DataFrame) -> tuple[int, int]:
        """Bulk path: a validated frame with EVENT_COLUMNS (context as JSON text), in time order."""
        if self.pseudonym:
            frame = frame.assign(user_id=frame["user_id"].map(lambda u: self.user_key(u) if isinstance(u, str) else u))
        with self.lock:
            stored = self.store.append_frame(frame)
            fresh = frame[stored.to_numpy()]
            self.state.apply_frame(fresh)
        self.counters["events.accepted"] += len(fresh)
        self.counters["events.duplicate"] += len(frame) - len(fresh)
        return len(fresh), len(frame) - len(fresh)

    def put_items(self, records: list[ItemRecord]) -> None:
        with self.lock:
            self.store.upsert_items(records)
            self.state.catalog.upsert_many(records)
        self.counters["items.upserted"] += len(records)

    def put_user(self, user_id: str, attrs: dict[str, Any], created_ts: float | None = None) -> None:
        with self.lock:
            self.store.upsert_users([(self.user_key(user_id), attrs, created_ts)])

    def delete_user(self, user_id: str) -> int:
        """Forget a user: their events, record, profile, history and share of all counts."""
        key = self.user_key(user_id)
        with self.lock:
            removed = self.store.delete_user(key)
            self.state.forget(key, removed)
        self.counters["users.deleted"] += 1
        return len(removed)

    # -- reads ------------------------------------------------------------------------------
    def recommend(self, user_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None,
                  context: dict[str, Any] | None = None) -> Answer:
        key = self.user_key(user_id)
        with self.lock, self.state.reading(key):
            return self.service.recommend(key, n, filters, strategy, context)

    def recommend_session(self, session_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None,
                          context: dict[str, Any] | None = None) -> Answer:
        key = SESSION_PREFIX + session_id
        with self.lock, self.state.reading(key):
            return self.service.recommend(key, n, filters, strategy, context)

    def similar(self, item_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None) -> list[Recommended] | None:
        with self.lock, self.state.reading():
            return self.service.similar(item_id, n, filters, strategy)

    def profile(self, user_id: str) -> dict[str, Any] | None:
        key = self.user_key(user_id)
        with self.lock, self.state.reading(key):
            owner = self.state.owners.get(key)
            profile = self.state.profiles.get(owner) if owner is not None else None
            stored = self.store.get_user(key)
            if profile is None and stored is None:
                return None
            out: dict[str, Any] = profile.to_dict(self.state.now) if profile else {"event_count": 0}
            out["user_id"] = user_id
            out["attrs"] = stored["attrs"] if stored else {}
            recent = list(self.state.histories.recent(owner))
            catalog = self.state.catalog
            out["recent_items"] = [
                {"item_id": catalog.item_ids.id_of(t.item), "title": catalog.record(t.item).title, "type": t.type, "ts": t.ts}
                for t in reversed(recent[-20:])
            ]
            out["session"] = self._session_of(recent)
            return out

    def _session_of(self, recent: list) -> dict[str, Any]:
        """The current session: the trailing events with no gap longer than `session_gap`."""
        if not recent:
            return {"events": 0, "items": [], "started": None}
        gap = self.settings.session_gap
        start = len(recent) - 1
        while start > 0 and recent[start].ts - recent[start - 1].ts <= gap:
            start -= 1
        session = recent[start:]
        ids = self.state.catalog.item_ids
        return {"events": len(session), "items": [ids.id_of(t.item) for t in session], "started": session[0].ts}

    def item(self, item_id: str) -> dict[str, Any] | None:
        with self.lock, self.state.reading():
            idx = self.state.catalog.item_ids.get(item_id)
            if idx is None:
                return None
            record = self.state.catalog.record(idx)
            pop = self.state.popularity
            return {
                "item_id": record.item_id,
                "title": record.title,
                "description": record.description,
                "category": record.category,
                "tags": list(record.tags),
                "price": record.price,
                "active": record.active,
                "created_at": record.created_ts,
                "attrs": record.attrs,
                "events": int(pop.events[idx]) if idx < len(pop.events) else 0,
                "popularity": float(pop.total[idx]) if idx < len(pop.total) else 0.0,
            }

    def stats(self) -> dict[str, Any]:
        with self.lock, self.state.reading():
            state = self.state
            return {
                "events_applied": state.applied,
                "events_stored": self.store.event_count(),
                "items": len(state.catalog),
                "users": len(state.profiles),
                "cooccurrence_nnz": state.cooc.nnz,
                "event_time": state.now if state.applied else None,
                "strategies": sorted(self.service.strategies),
                "counters": dict(self.counters),
                "uptime_s": round(time.time() - self.started_at, 1),
            }
