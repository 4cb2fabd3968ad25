"""The online state: applied for every accepted event, before the API acknowledges it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pulserec.config import Settings
from pulserec.events import Event, owner_keys
from pulserec.ids import IdIndex
from pulserec.online.catalog import Catalog
from pulserec.online.cooccurrence import MID_CAP, CoOccurrence, prefixed
from pulserec.online.history import Histories, Touch
from pulserec.online.popularity import Popularity
from pulserec.profiles.table import ProfileTable

if TYPE_CHECKING:
    from pulserec.store import SQLiteStore

log = logging.getLogger(__name__)

#: Bulk frames (imports, replays) fold their co-occurrence pairs into the bounded base once
#: they added this many entries beyond a quarter of it, and at the end of the load (`end_bulk`):
#: a quarter alone folded every other chunk of a 1M-event shop's import, and a schedule that
#: started from the first chunk evicted at points set by the chunks' size.
BULK_MID_CAP = MID_CAP


class OnlineState:
    """Catalogue, popularity, co-occurrence, histories and profiles, kept in step with the log."""

    #: Whether other processes see this state (False: it lives in this process only).
    shared = False
    #: Owner ids other processes unmapped from this state (none: only this process writes it).
    deletions = 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.weights = settings.weighting
        self.catalog = Catalog()
        self.owners = IdIndex()
        self.popularity = Popularity(settings.trending_halflife)
        self.cooc = CoOccurrence(settings.cooc_window, settings.cooc_gap_tau, top_k=settings.cooc_top_k,
                                 max_neighbours=settings.cooc_max_neighbours, evict_halflife=settings.cooc_evict_halflife,
                                 mid_cap=BULK_MID_CAP)
        self.histories = Histories(settings.history_len)
        self.profiles = ProfileTable(settings.interest_halflife, name_of=lambda owner: self.owners.id_of(owner))
        self.applied = 0
        self.last_seq = 0

    def restore(self, store: SQLiteStore, progress: Callable[[int], None] | None = None) -> None:
        """Load the catalogue, then replay the whole event log (this state starts empty)."""
        self.load(store, progress)

    def load(self, store: SQLiteStore, progress: Callable[[int], None] | None = None, upto_seq: int | None = None) -> None:
        """Load the catalogue, then replay the event log up to `upto_seq` (a rebuild's watermark)."""
        started = time.perf_counter()
        for record in store.load_items():
            self.catalog.upsert(record)
        for frame in store.iter_events(upto_seq=upto_seq):
            self.apply_frame(frame)
            if progress:
                progress(len(frame))
        self.end_bulk()
        log.info("rebuilt online state from %d events in %.2fs", self.applied, time.perf_counter() - started)

    def close(self) -> None:
        """Release resources (nothing to release for the in-memory state)."""

    @contextmanager
    def reading(self, owner_key: str | None = None) -> Iterator[None]:
        """Scope of one read request (a no-op here; a shared state takes one snapshot)."""
        yield

    @property
    def now(self) -> float:
        """Event-time clock: the latest timestamp applied."""
        return self.popularity.now

    def apply(self, event: Event, seq: int = 0) -> bool:
        """Apply one event (the incremental path; O(window + tags)). Always True: the in-memory
        state never sees an event twice (the store deduplicates before it)."""
        weight = self.weights.of_event(event)
        owner_key = event.owner
        owner = self.owners.add(owner_key)
        category, tags = None, ()
        if event.item_id is not None:
            item = self.catalog.intern(event.item_id, event.ts)
            record = self.catalog.record(item)
            category, tags = record.category, record.tags
            self.popularity.add(item, weight, event.ts)
            recent = self.histories.latest(owner, self.cooc.window)
            self.cooc.add_event(item, weight, event.ts, reversed(recent))
            self.histories.add(owner, Touch(item, weight, event.ts, event.type))
        else:
            self.popularity.advance(event.ts)
        self.profiles.update(owner, event.type, weight, event.ts, category, tags, event.context, event.query)
        self.applied += 1
        self.last_seq = max(self.last_seq, seq)
        return True

    def apply_many(self, batch: list[tuple[Event, int]]) -> list[bool]:
        """Apply (event, seq) pairs in order (the in-memory state never sees a duplicate)."""
        for event, seq in batch:
            self.apply(event, seq)
        return [True] * len(batch)

    def apply_stored(self, fresh: list[tuple[Event, int]], store: SQLiteStore) -> None:
        """Apply events the store just accepted (the in-memory state cannot miss one: a process
        that dies loses it together with its state, and a restart replays the log)."""
        self.apply_many(fresh)

    def apply_frame(self, frame: pd.DataFrame) -> None:
        """Apply stored events (a frame in arrival order) in bulk: vectorised where it counts."""
        if frame.empty:
            return
        weights = self.weights.of_frame(frame)
        ts = frame["ts"].to_numpy(dtype=np.float64)
        owner_ids = owner_keys(frame)
        owners = self.owners.add_many(owner_ids)
        has_item = frame["item_id"].notna().to_numpy()
        item_ids = frame["item_id"].to_numpy(dtype=object)
        items = np.full(len(frame), -1, dtype=np.int64)
        items[has_item] = self.catalog.intern_many(item_ids[has_item], ts[has_item])
        sel = has_item
        self.popularity.add_many(items[sel], weights[sel], ts[sel])
        if not sel.all():
            self.popularity.advance(float(ts.max()))
        self._pairs_with_context(owners[sel], items[sel], weights[sel], ts[sel])
        self._replay_histories_and_profiles(frame, owners, items, weights, ts)
        self.applied += len(frame)
        if "seq" in frame:
            self.last_seq = max(self.last_seq, int(frame["seq"].max()))

    def end_bulk(self) -> None:
        """A bulk load is over: its co-occurrence pairs are folded into the bounded base now,
        not at some later write (the state after an import or a replay is the folded one)."""
        self.cooc.compact()

    def _pairs_with_context(self, owners: np.ndarray, items: np.ndarray, weights: np.ndarray, ts: np.ndarray) -> None:
        """Add a bulk log's pairs, including those with each owner's touches from earlier logs,
        exactly as per-event updates would have made them."""
        context = self.histories.context(owners, self.cooc.window)
        *log, fresh = prefixed(owners, items, weights, ts, context)
        self.cooc.add_log(*log, fresh=fresh)

    def _replay_histories_and_profiles(self, frame, owners, items, weights, ts) -> None:
        types = frame["type"].to_numpy(dtype=object)
        has_item = items >= 0
        self.histories.add_many(owners[has_item], items[has_item], weights[has_item], ts[has_item], types[has_item])
        self.profiles.fold(owners, types, weights, ts, items, self.catalog.records(),
                           frame["context"].to_numpy(dtype=object) if "context" in frame else None,
                           frame["query"].to_numpy(dtype=object) if "query" in frame else None)

    def _item_log(self, events: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(items, weights, ts) of the item events in a stored-event frame, in its order."""
        events = events[events["item_id"].notna()]
        weights = self.weights.of_frame(events)
        ts = events["ts"].to_numpy(dtype=np.float64)
        items = np.array([self.catalog.intern(i) for i in events["item_id"]], dtype=np.int64)
        return items, weights, ts

    def _pairs(self, events: pd.DataFrame, sign: float) -> None:
        items, weights, ts = self._item_log(events)
        self.cooc.add_log(np.zeros(len(items), dtype=np.int64), items, weights, ts, sign=sign)

    def forget(self, owner_key: str, events: pd.DataFrame) -> None:
        """Remove every trace of one owner, given all of their stored events."""
        owner = self.owners.get(owner_key)
        if owner is not None:
            self.histories.forget(owner)
            self.profiles.forget(owner)
        if events.empty:
            return
        if "seq" in events:  # events stored by another process but not applied here yet
            events = events[events["seq"] <= self.last_seq]
            if events.empty:
                return
        self.applied -= len(events)
        items, weights, ts = self._item_log(events)
        self.popularity.add_many(items, weights, ts, sign=-1.0)
        self._pairs(events, -1.0)

    def absorb(self, user_key: str, session_key: str, user_events: pd.DataFrame, session_events: pd.DataFrame,
               reload: Callable[[], tuple[pd.DataFrame, pd.DataFrame]] | None = None) -> None:
        """A session logged in: re-key its events to the user, leaving the state exactly as if they
        had been the user's all along (pairs, history and profile recomputed from the joint log).

        `reload` (re-reading both logs) is for a shared state; this one changes only under the
        engine's lock, so the logs given are those it has applied."""
        session = self.owners.get(session_key)
        if session is not None:
            self.histories.forget(session)
            self.profiles.forget(session)
        self._pairs(session_events, -1.0)
        self._pairs(user_events, -1.0)
        joint = pd.concat([user_events, session_events], ignore_index=True).sort_values("seq", kind="stable")
        joint = joint.assign(user_id=user_key)
        self._pairs(joint, 1.0)
        user = self.owners.add(user_key)
        self.histories.forget(user)
        self.profiles.forget(user)
        owners = np.full(len(joint), user, dtype=np.int64)
        has_item = joint["item_id"].notna().to_numpy()
        items = np.full(len(joint), -1, dtype=np.int64)
        items[has_item] = self._item_log(joint)[0]
        weights = self.weights.of_frame(joint)
        ts = joint["ts"].to_numpy(dtype=np.float64)
        self._replay_histories_and_profiles(joint, owners, items, weights, ts)
