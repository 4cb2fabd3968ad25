"""The engine: durable store + online state + recommendation service, behind one lock.

Write path: validate -> append to the store (one transaction, deduplicated by event_id) ->
apply each newly stored event to the online state -> acknowledge. A restart rebuilds the
online state from the log, so nothing acknowledged is ever lost.

The Engine owns the lock, the store, the state and the service, and keeps the write and read
paths; what runs beside them has a module of its own in this package and is reached as an
attribute: `training` (train, install, retrain without deleted users), `rebuilds` (POST
/admin/rebuild), `checkpoints` (when snapshots are written), `health` (readiness, the shared
state's supervisor), `bulk` (the pipelined import path behind `ingest_frames`), `sessions` (the
login merge of an anonymous session into its user)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import pandas as pd

from pulserec.config import Settings
from pulserec.decay import read_clock
from pulserec.engine.heap import settle_after_build
from pulserec.engine.bulk import CHUNK, BulkIngest
from pulserec.engine.checkpoints import Checkpoints, restore
from pulserec.engine.health import Health, start_supervisor
from pulserec.engine.rebuild import Rebuilds
from pulserec.engine.sessions import SessionMerge
from pulserec.engine.training import Training
from pulserec.engine.views import item_view, profile_view
from pulserec.engine.writes import IngestListener, IngestResult, StoredNotApplied, state_unavailable
from pulserec.events import SESSION_PREFIX, Event
from pulserec.experiments.service import Experiments
from pulserec.models.base import Recommender
from pulserec.online import make_state
from pulserec.online.base import State
from pulserec.online.streams import make_publisher
from pulserec.recommend.controls import Controls
from pulserec.recommend.exploration import Exposure
from pulserec.recommend.jobs import JobRegistry
from pulserec.recommend.search import SearchResults, search
from pulserec.recommend.service import Answer, Filters, Recommended, RecommendationService
from pulserec.records import ItemRecord
from pulserec.store import SQLiteStore
from pulserec.store.controls import ControlStore
from pulserec.store.feedback import FeedbackStore
from pulserec.store.history import History
from pulserec.store.job_table import JobTable
from pulserec.store.pseudonym import Pseudonymizer
from pulserec.store.search_log import SearchLog
from pulserec.store.segments import Segments
from pulserec.store.social import SELF_FOLLOW, SocialGraph
from pulserec.validation import InvalidInput, check_events, check_id_len, check_n

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A start that applied at least this many events moves its objects out of the cyclic GC's sight.
FREEZE_AFTER_EVENTS = 100_000

class Engine:
    def __init__(self, settings: Settings, store: SQLiteStore | None = None, progress: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self._closed = False
        self._value_rules = settings.value_rules
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = store or SQLiteStore(settings.db_path, settings.sqlite_synchronous, settings.accept_data_loss)
        self.lock = threading.RLock()
        self.state: State = make_state(settings)
        self.publisher = make_publisher(settings)
        # With a shared state and a stream, `pulserec updater` applies what this process publishes.
        self.applies_locally = not (self.publisher and self.state.shared)
        self.searches = SearchLog(self.store)  # what people chose after searching (issue 14.3)
        self.social = SocialGraph(self.store)  # who follows whom (issue 14.4)
        self.segments = Segments(self.store, settings.weighting, settings.trending_halflife)  # issue 14.5
        self.service = RecommendationService(self.state, settings, learned=self.searches, graph=self.social,
                                             segments=self.segments)
        self.feedback = FeedbackStore(self.store)
        self.history = History(self.store)  # the dashboard's history and lists (after feedback: it indexes impressions)
        self.experiments = Experiments(self.feedback)
        self.controls = Controls(ControlStore(self.store))  # named filters, promotions (this app's)
        self.service.exposure = Exposure(self.feedback)  # impressions and clicks per item, for exploration
        self.pseudonym = Pseudonymizer.from_settings(settings) if settings.pseudonymize_users else None
        self.counters: Counter[str] = Counter()
        self.jobs = JobRegistry(settings.max_jobs, JobTable(settings.jobs_path))  # shared by --workers
        self.training = Training(self)
        self.jobs.on_finished.append(self.training.retrain_forgotten)  # a retrain refused for max_jobs
        self.rebuilds = Rebuilds(self)
        self.bulk = BulkIngest(self)
        self.sessions = SessionMerge(self)
        self.started_at = time.time()
        #: Observers of live ingestion (metrics, dashboards); not called for the rebuild at start-up.
        self.ingest_listeners: list[IngestListener] = []
        self.checkpoints = Checkpoints(self, settings, self.state.shared)
        self._rebuild(progress)
        if self.state.applied >= FREEZE_AFTER_EVENTS:
            # The millions of objects a start builds live as long as the process: out of the
            # collector's sight, full collections no longer walk them (at 300k events the
            # worst of 2,000 recommend calls went from 423 to 73 ms on a loaded box); and the
            # build's freed temporaries back to the kernel (RSS).
            settle_after_build()
        self.checkpoints.started()
        self.health = Health(self.store, settings, start_supervisor(self.state, self.store, settings, self.publisher))
        self.training.install_saved()  # serve the models saved under <data_dir>/models/
        self._warm_reads()
        self._deletions = self.state.deletions
        self.training.forget_absent_users()

    def _warm_reads(self) -> None:
        """Before this process serves anything: item-kNN's scored rows of the most-read items,
        within `neighbour_rows_mb` (models/neighbour_rows.py), so that the first requests of
        long histories neither fetch (Redis) nor normalise their rows (MovieLens: every row,
        ~24 MiB, 0.1-0.3 s). A state that cannot be read now is warmed by its requests instead."""
        started = time.perf_counter()
        try:
            with self.lock, self.state.reading(None):
                kept = self.service.item_knn.warm()
        except state_unavailable() as exc:
            log.warning("item-kNN rows not warmed at start: %s", exc)
            return
        if kept:
            log.info("item-kNN: %d rows kept at start in %.2f s", kept, time.perf_counter() - started)

    @property
    def snapshots(self) -> Any:
        """The snapshot files (`online/snapshots.py:Snapshots`), None when they are off."""
        return self.checkpoints.snapshots

    @property
    def supervisor(self) -> Any:
        """The shared state's supervisor (`online/redis/supervisor.py`), None for the in-memory state."""
        return self.health.supervisor

    # -- lifecycle --------------------------------------------------------------------------
    def _rebuild(self, progress: Callable[[int], None] | None = None) -> None:
        """Bring the online state up to date with the log (a snapshot and its tail, else a full
        replay). A replica overrides it to note the log's versions first."""
        loaded = restore(self.state, self.store, self.checkpoints.snapshots, progress)
        if loaded is not None:
            self.swap_state(loaded)

    def swap_state(self, state: State) -> None:
        """Serve `state` from now on, with every served model re-bound to it (under the lock)."""
        self.state, self.service = state, self.service.rebound(state)

    def close(self) -> None:
        """Close the store (checkpointing its WAL), the state and the publisher; idempotent (the
        app's shutdown and the CLI may both call it)."""
        if self._closed:
            return
        self._closed = True
        self.jobs.close()  # no training or rebuild outlives the store it reads
        self.jobs.table.close()
        self.history.close()
        self.checkpoints.on_close()
        self.health.stop()
        self.store.close()
        self.state.close()
        if self.publisher:
            self.publisher.close()

    # -- ids --------------------------------------------------------------------------------
    def user_key(self, user_id: str) -> str:
        """The id under which a user is stored (a pseudonym when pseudonymisation is on)."""
        return self.pseudonym(user_id) if self.pseudonym else user_id

    def session_key(self, session_id: str) -> str:
        """The id under which a session is stored (a pseudonym when pseudonymisation is on):
        a session id is as personal as a user id (a cookie that follows one browser)."""
        return self.pseudonym.session(session_id) if self.pseudonym else session_id

    def _pseudonymous(self, event: Event) -> Event:
        user, session = event.user_id, event.session_id
        return event._replace(user_id=self.user_key(user) if user else user,
                              session_id=self.session_key(session) if session else session)

    # -- writes -----------------------------------------------------------------------------
    def check_events(self, events: Iterable[Event]) -> None:
        """The rules of the settings (event types, per-type values, id lengths); raises
        :class:`InvalidInput` naming the event's index and field."""
        check_events(events, self.settings.event_weights, self._value_rules, self.settings.max_id_len)

    def ingest(self, events: list[Event]) -> IngestResult:
        """Store and apply a batch atomically (all stored, or none); duplicates are skipped."""
        self.check_events(events)
        if self.pseudonym:
            events = [self._pseudonymous(e) for e in events]
        with self.lock:
            for event in events:
                if event.user_id and event.session_id:
                    self.sessions.log_in(event.user_id, event.session_id)
            seqs = self.store.append_events([e.row() for e in events])
            failure = self._apply_stored(events, seqs)
        accepted = sum(s is not None for s in seqs)
        self.counters["events.accepted"] += accepted
        self.counters["events.duplicate"] += len(events) - accepted
        result = IngestResult(accepted, len(events) - accepted, [e.event_id for e in events], [s is not None for s in seqs])
        if failure is not None:
            self.counters["events.stored_not_applied"] += accepted
            raise StoredNotApplied(result, failure)
        fresh = [e for e, s in zip(events, seqs) if s is not None]
        self.notify(Counter(e.type for e in fresh), len(events) - accepted, max((e.ts for e in fresh), default=None))
        return result

    def log_in(self, user_id: str, session_id: str) -> None:
        """Merge the anonymous session into the user now (the browser SDK's `identify`), as the
        user's first event naming both would; nothing happens when the session has no events."""
        check_id_len("user_id", user_id, self.settings.max_id_len)
        check_id_len("session_id", session_id, self.settings.max_id_len)
        with self.lock:
            self.sessions.log_in(self.user_key(user_id), self.session_key(session_id))

    def _apply_stored(self, events: list[Event], seqs: list[int | None]) -> BaseException | None:
        """Apply (or publish) the events the store just accepted (those given a `seq`), in order.
        Returns the error if the shared state could not take them (they stay stored)."""
        fresh = [(event, seq) for event, seq in zip(events, seqs) if seq is not None]
        try:
            self._apply_or_publish(fresh)
        except state_unavailable() as exc:
            log.warning("stored %d events the online state could not take now (%s); they are applied later",
                        len(fresh), exc)
            self.health.note_failure(exc)
            return exc
        for event, _ in fresh:
            self.counters[f"events.{event.type}"] += 1
        return None

    def apply_stored_frame(self, fresh: pd.DataFrame) -> None:
        """Apply a frame of events the store just accepted (the bulk path, under the lock; a
        replica overrides it to read them back from the log)."""
        self.state.apply_frame(fresh)

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
            self.state.apply_stored(fresh, self.store)

    def ingest_frame(self, frame: pd.DataFrame) -> tuple[int, int]:
        """Bulk path: a validated frame with EVENT_COLUMNS (context as JSON text), in time order."""
        return self.ingest_frames([frame])

    def ingest_frames(self, frames: Iterable[pd.DataFrame], chunk: int = CHUNK, use_process: bool | None = None,
                      finish: Sequence[str] = (), snapshot: bool = False) -> tuple[int, int]:
        """Bulk path over many frames, pipelined (see :class:`BulkIngest`); returns (accepted, duplicates)."""
        return self.bulk.ingest(frames, chunk, use_process, finish, snapshot)

    def notify(self, accepted_by_type: Mapping[str, int], duplicates: int, latest_ts: float | None) -> None:
        for listener in self.ingest_listeners:
            try:
                listener(accepted_by_type, duplicates, latest_ts)
            except Exception:  # noqa: BLE001 - an observer must never fail an acknowledged write
                log.exception("ingest listener %r failed", listener)

    def put_items(self, records: list[ItemRecord]) -> None:
        for record in records:
            check_id_len("item_id", record.item_id, self.settings.max_id_len)
        with self.lock:
            self.store.upsert_items(records)
            self.state.catalog.upsert_many(records)
        self.counters["items.upserted"] += len(records)

    def put_user(self, user_id: str, attrs: dict[str, Any], created_ts: float | None = None) -> None:
        self.put_users([(user_id, attrs, created_ts)])

    def put_users(self, users: list[tuple[str, dict[str, Any], float | None]]) -> None:
        """Create or update many users in one transaction: (user_id, attrs, created_ts)."""
        for user_id, _, _ in users:
            check_id_len("user_id", user_id, self.settings.max_id_len)
        with self.lock:
            self.store.upsert_users([(self.user_key(uid), attrs, created) for uid, attrs, created in users])

    def delete_user(self, user_id: str) -> int:
        """Forget a user: their events, record, profile, history and share of all counts."""
        key = self.user_key(user_id)
        with self.lock:
            removed = self.store.delete_user(key)
            self.social.forget(key)  # their ties, both ways
            self.segments.forget()  # cached segments hold their share
            if removed["query"].notna().any():
                self.searches.purge()  # their queries out of the search index's pages too
            self.feedback.forget_user(key)
            self.experiments.forget_user(key)
            self.state.forget(key, removed)
            if self.publisher and len(removed):
                self._forget_published(key, removed)
            self.checkpoints.log_rewritten(removes_user=True)  # they hold the user: one without them soon
            if self.state.shared and len(removed):  # the log's newest seqs may be reused (see sync)
                self.state.truncated(self.store.max_seq())
            self.rebuilds.user_deleted(key, removed)
            self.training.user_deleted(key)
        if not self.store.checkpoint():
            log.info("the WAL still holds pages from before the deletion: a reader keeps them until it ends")
        self.training.retrain_forgotten()
        self.counters["users.deleted"] += 1
        return len(removed)

    def _forget_published(self, key: str, removed: pd.DataFrame) -> None:
        """The deleted user's events out of the stream (as the user's, or as sessions they merged).
        A stream that cannot be reached keeps them (logged): the state's deletion set still keeps
        every updater from applying them."""
        sessions = removed["session_id"].dropna().unique().tolist()
        try:
            self.publisher.forget([key, *(SESSION_PREFIX + s for s in sessions)], removed["event_id"].tolist())
        except Exception as exc:  # noqa: BLE001 - the deletion itself is done; the stream retains them
            log.warning("could not delete a deleted user's %d events from the stream: %s", len(removed), exc)

    # -- reads ------------------------------------------------------------------------------
    def recommend(self, user_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None,
                  context: dict[str, Any] | None = None) -> Answer:
        check_n(n, self.settings.max_n)
        key = self.user_key(user_id)
        with self.lock, self.state.reading(key):
            self.deleted_elsewhere()
            return self.service.recommend(key, n, filters, strategy, context)

    def recommend_session(self, session_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None,
                          context: dict[str, Any] | None = None) -> Answer:
        check_n(n, self.settings.max_n)
        key = SESSION_PREFIX + self.session_key(session_id)
        with self.lock, self.state.reading(key):
            self.deleted_elsewhere()
            return self.service.recommend(key, n, filters, strategy, context)

    def deleted_elsewhere(self, moved: bool = False) -> None:
        """Another process deleted a user (a shared state counts the ids it unmapped; a replica
        passes `moved`): this process's cached segments drop their share and its trained models
        stop using users the log no longer has. A comparison per request, the check per deletion."""
        if not moved and self.state.deletions == self._deletions:
            return
        self._deletions = self.state.deletions
        self.segments.forget()
        self.training.forget_absent_users()

    # -- social ties (issue 14.4) -------------------------------------------------------------
    def follow(self, user_id: str, other_id: str, weight: float = 1.0) -> bool:
        """`user_id` follows `other_id` (tie strength `weight`); True when the tie is new."""
        if user_id == other_id:
            raise InvalidInput("other_id", SELF_FOLLOW)
        return self.social.follow(self.user_key(user_id), self.user_key(other_id), weight)

    def unfollow(self, user_id: str, other_id: str) -> bool:
        return self.social.unfollow(self.user_key(user_id), self.user_key(other_id))

    def follow_many(self, edges: Iterable[tuple[str, str, float]]) -> int:
        """Bulk import of ties (one transaction); returns how many were new."""
        return self.social.follow_many((self.user_key(a), self.user_key(b), w) for a, b, w in edges)

    def ties(self, user_id: str, direction: str, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """Whom `user_id` follows (`direction` "follows") or who follows them ("followers"), as
        stored (pseudonyms when user ids are pseudonymised)."""
        read = self.social.follows if direction == "follows" else self.social.followers
        return [{"user_id": other, "weight": weight, "since": since}
                for other, weight, since in read(self.user_key(user_id), limit, offset)]

    def search_items(self, query: str, n: int, user_id: str | None = None, session_id: str | None = None,
                     filters: Filters = Filters(exclude_seen=False)) -> list[Recommended]:
        """Catalogue items matching `query`, ranked by match x the user's (or session's) personal score."""
        check_n(n, self.settings.max_n)
        key = self.user_key(user_id) if user_id else SESSION_PREFIX + self.session_key(session_id) if session_id else None
        with self.lock, self.state.reading(key):
            return self.service.search_items(key, query, n, filters)

    def similar(self, item_id: str, n: int, filters: Filters = Filters(), strategy: str | None = None) -> list[Recommended] | None:
        check_n(n, self.settings.max_n)
        with self.lock, self.state.reading():
            return self.service.similar(item_id, n, filters, strategy)

    def clock(self) -> float:
        """When decayed scores are read: the wall clock for live traffic, the newest event time
        for an imported history (:func:`pulserec.decay.read_clock`)."""
        return read_clock(self.state.now, time.time(), self.settings.live_clock_window)

    def profile(self, user_id: str) -> dict[str, Any] | None:
        key = self.user_key(user_id)
        with self.lock, self.state.reading(key):
            return profile_view(self.state, user_id, key, self.store.get_user(key), self.clock(), self.settings.session_gap)

    def item(self, item_id: str) -> dict[str, Any] | None:
        with self.lock, self.state.reading():
            return item_view(self.state, item_id)

    def runs_here(self, writes: bool = False) -> bool:
        """Whether a call may run on the caller's thread (an event loop) rather than in a worker
        thread: it does no I/O that can stall beyond this process's SQLite file. Not with a shared
        state (every read is a network round trip), nor for a write that publishes to a stream
        or meets a bulk import's writer holding SQLite's write lock outside the engine's lock.

        Why ask: in a thread a request pays a hop to a worker and back and the GIL handed
        between them; on our 2-core VM under load.py's 32 connections that was 1.3-2.5 ms more
        CPU per request than its own work (11-33 context switches per request: docs/benchmarks.md,
        issue 11), so the hot routes run their engine call on the loop when this is True."""
        return not self.state.shared and not (writes and (self.publisher or self.bulk.running))

    @contextmanager
    def turn_now(self) -> Iterator[bool]:
        """True, with the lock held until the block ends, when no other thread holds it; False
        (nothing held) when one does: a caller on an event loop must not wait for a writer, a
        snapshot or a model install there. The lock is reentrant, so the engine method run in
        the block takes it again without waiting."""
        if not self.lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            self.lock.release()

    def read(self, query: Callable[[State], T], owner_key: str | None = None) -> T:
        """`query(state)` under the lock, in one read scope of the online state (one snapshot of
        a shared state): how read-only views (search, trending lists) see a consistent state."""
        with self.lock, self.state.reading(owner_key):
            return query(self.state)

    def served_models(self) -> dict[str, Recommender]:
        """The strategies being served now, by name (a copy: it may change right after)."""
        with self.lock:
            return dict(self.service.strategies)

    def default_choice(self) -> dict[str, Any] | None:
        """What the self-chosen default (an installed `auto`) chose; None while the built-in blend serves."""
        with self.lock:
            return self.service.models.default_choice

    def serves(self, name: str) -> bool:
        """Whether strategy `name` is served. Without the lock: the metrics middleware asks on the
        event loop, and one dict lookup is atomic (a strategy installed meanwhile counts next time)."""
        return name in self.service.strategies

    def search(self, query: str, limit: int = 10, users: bool = True, items: bool = True) -> SearchResults:
        """Users and items whose id or title contains `query` (see recommend/search.py)."""
        exact = self.user_key(query) if self.pseudonym else None
        return self.read(lambda state: search(state, query, limit, users, items, exact_user=exact))

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
                "clock": self.clock() if state.applied else None,
                "strategies": sorted(self.service.strategies),
                "counters": dict(self.counters),
                "uptime_s": round(time.time() - self.started_at, 1),
                "snapshot": self.checkpoints.stats(),
            }
