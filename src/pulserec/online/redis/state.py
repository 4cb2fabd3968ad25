"""`RedisState`: the `OnlineState` interface with everything kept in Redis.

Several processes (uvicorn workers, hosts, `pulserec updater`) can apply events to and serve
from one namespace and see the same state. One event is two round trips: PREPARE interns the
owner and item and reads what the change depends on (the owner's last `window` touches, the
item's record, the trending landmark); Python computes the change with the in-memory state's
own functions (profiles as deltas that COMMIT merges, see `profile_deltas`); COMMIT applies it
atomically if nothing it read has changed (else the event is retried) and records the event id,
which makes applying idempotent. Batches (an updater's reads) go through `bulk`.

A recommendation reads one snapshot (one script call, see `snapshot`; none while nothing changed
since this process read the owner's, as invalidation pushes tell it: `pushes`) inside `reading()`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pulserec.config import Settings
from pulserec.events import Event, events_from_frame
from pulserec.online.redis import bulk, sync
from pulserec.online.redis.catalog import RedisCatalog
from pulserec.online.redis.codec import TOUCH, TypeCodes, decode_record, encode_float, encode_record, encode_seen
from pulserec.online.redis.connection import (
    MAX_ATTEMPTS,
    Keys,
    StateBackendError,
    StateConflictError,
    StateUnavailable,
    connect,
)
from pulserec.online.redis.cooccurrence import RedisCoOccurrence
from pulserec.online.redis.counters import RedisPopularity
from pulserec.online.redis.histories import RedisHistories
from pulserec.online.redis.ids import RedisIdIndex
from pulserec.online.redis.plan import CommitPlan
from pulserec.online.redis.profile_deltas import profile_deltas
from pulserec.online.redis.profiles import RedisProfiles
from pulserec.online.redis.pushes import PushChannel
from pulserec.online.redis.read_cache import ReadCache
from pulserec.online.redis.scripts import Scripts
from pulserec.online.redis.snapshot import Snapshot, fetch_snapshot
from pulserec.decay import LN2
from pulserec.records import ItemRecord

if TYPE_CHECKING:
    from pulserec.store import SQLiteStore

log = logging.getLogger(__name__)

#: Compact a row once its uncompacted tail is longer than its head and than this many bytes.
COMPACT_BYTES = 12 * 256
#: Batches of at least this many events are applied in bulk (fewer round trips and Lua calls,
#: vectorised planning); below it the per-event waves answer sooner.
BULK_MIN = 16
#: How long a process waits for another one to finish loading an empty namespace.
INIT_WAIT_S = 600.0
#: The init lock expires this long after the loader last renewed it (a killed loader frees it).
INIT_LOCK_S = 30
#: The layout of the values in Redis (part of the fingerprint: a namespace written by a pulserec
#: with another layout is rebuilt, not misread). 2: profiles as hashes of fields, merged by COMMIT;
#: 3: owners per item (vec:users, the minimum support); 4: each item's last event time
#: (vec:seen_at), which bounded row compactions rank by (`cooc_max_neighbours`).
STATE_FORMAT = 4


def event_digests(event_ids) -> list[bytes]:
    """What the deletion set holds for event ids: 16 bytes of their SHA-256, not the ids (which
    may name the user)."""
    return [hashlib.sha256(str(i).encode("utf-8", "surrogatepass")).digest()[:16] for i in event_ids]


class RedisState:
    """Online state in Redis, shared by every process that uses the same URL and namespace."""

    #: Other processes see this state.
    shared = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.weights = settings.weighting
        self.client = connect(settings.state_url, "state", settings.state_timeout_s)
        self.keys = Keys(settings.state_namespace)
        self.scripts = Scripts(self.client)
        self.codes = TypeCodes(settings.event_weights)
        self.catalog = RedisCatalog(self)
        self.owners = RedisIdIndex(self)
        self.popularity = RedisPopularity(self, settings.trending_halflife)
        self.cooc = RedisCoOccurrence(self, settings.cooc_window, settings.cooc_gap_tau, settings.cooc_max_neighbours,
                                      settings.cooc_evict_halflife)
        self.histories = RedisHistories(self, settings.history_len)
        self.profiles = RedisProfiles(self, settings.interest_halflife)
        self._local = threading.local()
        self._epoch: int | None = None
        self.read_cache = ReadCache()  # large strings of earlier reads, revalidated by each read
        #: The `meta.state_id` of the namespace this process attached to ('' before it did). A
        #: namespace without it (Redis restarted empty) or with another one (reloaded by another
        #: process) is not the state this process knows: COMMIT refuses to write to it.
        self.state_id = ""
        self._loading = False  # this process is loading the namespace (it reads it meanwhile)
        self._due: list[int] | None = None  # rows due for compaction when deferred (defer_compaction)
        self._due_lock = threading.Lock()
        self._pushes: PushChannel | None = None  # opened by the first read (a writer never needs it)

    def close(self) -> None:
        if self._pushes is not None:
            self._pushes.close()
        self.client.close()

    def push_generation(self, open_channel: bool = True) -> int | None:
        """The invalidation channel's generation (see `pushes`), None when views cannot be trusted.
        Only serving reads open the channel (`open_channel`): a process that reads just its
        catalogue mirror now and then (an updater) would leave pushes piling up in Redis."""
        if self._pushes is None:
            if not open_channel:
                return None
            self._pushes = PushChannel(self.settings.state_url, self.keys.prefix, self.settings.state_timeout_s)
        return self._pushes.generation()

    # -- reads -------------------------------------------------------------------------------
    def current_view(self) -> Snapshot | None:
        """The snapshot of the read request in progress on this thread, if any."""
        return getattr(self._local, "view", None)

    def view(self) -> Snapshot:
        """The current request's snapshot, or (outside `reading()`) a fresh one."""
        return self.current_view() or self.snapshot(None)

    def snapshot(self, owner_key: str | None, with_vectors: bool = True) -> Snapshot:
        return fetch_snapshot(self, owner_key, with_vectors)

    @contextmanager
    def reading(self, owner_key: str | None = None) -> Iterator[None]:
        """Serve one request from one snapshot (nested scopes reuse the outer one)."""
        if self.current_view() is not None:
            yield
            return
        self._local.view = self.snapshot(owner_key)
        try:
            yield
        finally:
            self._local.view = None

    def check_identity(self, state_id: str, ready: bool) -> None:
        """Adopt a namespace another process reloaded; StateUnavailable if it is lost or loading.
        (A state never attached, as in tests, uses a namespace nobody loaded as it is.)"""
        if state_id == self.state_id and (ready or not state_id or self._loading):
            return
        if state_id and ready:  # reloaded from the log by another process: the same data, anew
            if self.state_id:  # not the first read of a process that has not attached yet
                log.warning("Redis state %s was reloaded (state id %s -> %s)", self.keys.namespace, self.state_id, state_id)
            self.state_id = state_id
            self.owners.clear_cache()  # indices were given anew
            self.catalog.clear_cache()
            self.read_cache.clear()
            return
        if not state_id:
            raise StateUnavailable(f"the Redis state at {self.settings.state_url} ({self.keys.namespace}) is lost "
                                   "(Redis restarted without it); it is being rebuilt from the event log")
        raise StateUnavailable(f"the Redis state ({self.keys.namespace}) is being rebuilt from the event log")

    @property
    def epoch(self) -> int | None:
        """The namespace's reset count as of this process's last read (None before one)."""
        return self._epoch

    def check_epoch(self, epoch: int) -> bool:
        """Drop id caches and the catalogue mirror if the namespace was reset; True if so."""
        if self._epoch is None or self._epoch == epoch:
            self._epoch = epoch
            return False
        self._epoch = epoch
        self.owners.clear_cache()
        self.catalog.clear_cache()
        self.read_cache.clear()
        return True

    def _meta(self, field: str) -> bytes | None:
        view = self.current_view()
        if view is not None and field in ("now", "applied"):
            return str(getattr(view, field)).encode()
        return self.client.hget(self.keys.meta, field)

    @property
    def now(self) -> float:
        """Event-time clock: the latest timestamp applied (-inf before any)."""
        raw = self._meta("now")
        return float(raw) if raw else float("-inf")

    @property
    def applied(self) -> int:
        return int(self._meta("applied") or 0)

    @property
    def deletions(self) -> int:
        """Owner ids unmapped so far (`meta.drops`), as of this process's owner cache."""
        return self.owners.generation

    @property
    def synced_seq(self) -> int:
        """Every stored event with a seq up to this one is applied (see `sync`)."""
        return sync.watermark(self)[0]

    # -- writes ------------------------------------------------------------------------------
    def new_plan(self, generation: int | None = None) -> CommitPlan:
        """An empty change; `generation`: that of the cached owner indices it uses (default: now)."""
        return CommitPlan(self.settings.history_len * TOUCH.itemsize, COMPACT_BYTES, self.state_id,
                          LN2 / self.settings.interest_halflife,
                          self.owners.generation if generation is None else generation)

    def commit(self, plan: CommitPlan) -> str:
        """Run COMMIT; returns 'ok', 'dup' or 'conflict' (and compacts rows it reports)."""
        return self._committed(self.scripts.commit(args=plan.args(self.keys.prefix)))

    def _committed(self, reply: list[Any]) -> str:
        status = reply[0].decode()
        if status == "lost":  # raises unless another process reloaded it (then plan again)
            self.check_identity(*self.identity())
        if status == "stale":  # an owner id was unmapped meanwhile: look the indices up again
            self.owners.clear_cache()
        if status == "ok" and reply[1]:
            if self._due is None:
                self.cooc.compact(int(i) for i in reply[1])
            else:
                with self._due_lock:
                    self._due.extend(int(i) for i in reply[1])
        return status

    def defer_compaction(self) -> Callable[[], None]:
        """Leave the row compactions COMMITs ask for to the caller: returns the function that folds
        the rows due so far. An updater runs it on its read-ahead thread while it plans and commits
        the next batch (~10 us an event of its CPU on MovieLens): COMPACT_ROWS keeps what was
        appended meanwhile, so a compaction may run beside this process's and others' commits;
        a row reported again before it ran is folded once."""
        self._due = []
        return self._compact_due

    def _compact_due(self) -> None:
        with self._due_lock:
            rows, self._due = self._due, []
        if rows:
            self.cooc.compact(rows)

    def identity(self) -> tuple[str, bool]:
        """The namespace's (state id, ready) as Redis has them now."""
        state_id, ready = self.client.hmget(self.keys.meta, "state_id", "ready")
        return (state_id or b"").decode(), bool(ready)

    def apply_stored(self, fresh: list[tuple[Event, int]], store: SQLiteStore) -> None:
        """Apply events the store just accepted (consecutive seqs, one transaction). If every
        event stored before them is applied, apply them here; otherwise apply the log from the
        watermark on (theirs included), so that no earlier event is skipped or overtaken."""
        if not fresh:
            return
        synced, gen = sync.watermark(self)
        if synced >= fresh[0][1] - 1:
            self.apply_many(fresh)
            sync.raise_watermark(self, fresh[-1][1], gen)
        else:
            sync.sync(self, store, upto_seq=fresh[-1][1])

    def truncated(self, max_seq: int) -> None:
        """The log's newest events were deleted; its highest seq is now `max_seq` (see `sync`)."""
        sync.truncated(self, max_seq)

    def apply(self, event: Event, seq: int = 0) -> bool:
        """Apply one event; False if its id was applied before (a redelivery)."""
        return self.apply_many([(event, seq)])[0]

    def apply_many(self, batch: list[tuple[Event, int]]) -> list[bool]:
        """Apply events in order; returns, per event, False where its id had been applied before.

        A batch of `BULK_MIN` events or more (an updater's read) goes through the bulk path: a
        few round trips and one COMMIT per group of owners, whatever its size. A smaller one
        (an API write) pipelines waves of one event per owner: two round trips per wave."""
        if len(batch) >= BULK_MIN:
            return bulk.apply_frame(self, bulk.events_frame(batch), look_first=False).tolist()
        results = [False] * len(batch)
        pending = list(range(len(batch)))
        for _ in range(len(batch) + MAX_ATTEMPTS):
            if not pending:
                return results
            wave, later, owners = [], [], set()
            for i in pending:
                owner = batch[i][0].owner
                (later if owner in owners else wave).append(i)
                owners.add(owner)
            plans = []
            prepared = self.scripts.many(self.scripts.prepare, [self._prepare_args(batch[i][0]) for i in wave])
            for i, reply in zip(wave, prepared):
                if reply[0] != 1:  # 1: applied before
                    plans.append((i, self._plan_event(*batch[i], reply)))
            committed = self.scripts.many(self.scripts.commit, [plan.args(self.keys.prefix) for _, plan in plans])
            retry = []
            for (i, _), reply in zip(plans, committed):
                status = self._committed(reply)
                if status in ("conflict", "lost", "stale"):
                    retry.append(i)
                results[i] = status == "ok"
            pending = sorted(retry + later)
        raise StateConflictError(f"{len(pending)} events kept conflicting with concurrent writers")

    def apply_delivered(self, frame: pd.DataFrame) -> np.ndarray:
        """Apply a stream batch (a stored-event frame, arrival order) as `apply_many` does: from
        `BULK_MIN` events in bulk, fewer (a quiet stream: freshness) by the per-event waves, two
        round trips where the bulk path needs ~five. Returns the mask of the events this call
        applied (False: applied before, a redelivery)."""
        if len(frame) >= BULK_MIN:
            return bulk.apply_frame(self, frame, look_first=False)
        return np.array(self.apply_many(list(zip(events_from_frame(frame), frame["seq"].tolist()))), dtype=bool)

    def _prepare_args(self, event: Event) -> list[Any]:
        item_id = event.item_id or ""
        new_record = encode_record(ItemRecord(item_id=item_id, listed=False)) if item_id else b""
        return [self.keys.prefix, event.event_id, event.owner, item_id, new_record, encode_float(event.ts),
                self.cooc.window * TOUCH.itemsize]

    def _plan_event(self, event: Event, seq: int, prepared: list[Any]) -> CommitPlan:
        """The change one event makes, as `OnlineState.apply` makes it, from PREPARE's reply."""
        _, owner, item, version, tail, record_blob, landmark = prepared
        weight = self.weights.of_event(event)
        plan = self.new_plan()
        plan.mark_applied([event.event_id])
        plan.check_versions([owner], [version])
        ts = event.ts
        landmark_value = float(landmark) if landmark else None
        record = None
        if item >= 0:
            record = decode_record(record_blob, None) if record_blob else ItemRecord(item_id=event.item_id or "", listed=False)
            self.popularity.plan_add(plan, landmark_value, np.array([item]), np.array([weight]), np.array([ts]), ts)
            previous = reversed(self.codes.decode_touches(tail))
            self.cooc.plan_event(plan, item, weight, ts, previous)
            plan.append_history(owner, self.codes.encode_touches(np.array([item]), np.array([weight]), np.array([ts]), [event.type]))
            plan.append_seen(owner, encode_seen([item]))
        else:
            self.popularity.plan_add(plan, landmark_value, np.empty(0, np.int64), np.empty(0), np.empty(0), ts)
        plan.merge_profiles(profile_deltas(
            np.array([owner]), [event.user_id or event.owner], [event.type], np.array([weight]), np.array([ts]),
            np.array([0 if record else -1]), [record], [event.context], [event.query], plan.header["rate"]))
        plan.count(1, seq, ts)
        return plan

    def apply_frame(self, frame: pd.DataFrame) -> None:
        """Apply stored events (arrival order) in bulk; already-applied ones are skipped."""
        bulk.apply_frame(self, frame)

    def end_bulk(self) -> None:
        """Nothing to settle: a bulk frame's writes are in Redis when `apply_frame` returns."""

    def forget(self, owner_key: str, events: pd.DataFrame) -> None:
        """Remove every trace of one owner, given all of their stored events.

        Events not applied yet (still in the stream) are recorded as applied so that a later
        delivery cannot bring them back, and every event's id goes into the deletion set (as a
        digest) that updaters consult, which outlives a reset: a stream replayed from its start
        (a Kafka topic, which cannot delete records) never applies them again."""
        if len(events):
            self.client.sadd(self.keys.forgotten, *event_digests(events["event_id"].astype(str)))
        for _ in range(MAX_ATTEMPTS):
            owner = self.owners.get(owner_key)
            landmark, (version,) = self._pin([owner])
            plan = self.new_plan()
            done = self._plan_ids(plan, events)
            items, weights, ts = self._plan_drop_owner(plan, owner, version, events[done])
            if len(items):
                self.popularity.plan_add(plan, landmark, items, weights, ts, float(ts.max()), sign=-1.0)
            plan.count(-int(done.sum()))
            plan.drop_id(owner_key)  # in the same COMMIT: no event lands in the slot between the two
            if self.commit(plan) == "ok":
                self.owners.clear_cache()  # this commit moved the generation
                return
        raise StateConflictError(f"forgetting {owner_key!r} conflicted {MAX_ATTEMPTS} times with concurrent writers")

    def absorb(self, user_key: str, session_key: str, user_events: pd.DataFrame, session_events: pd.DataFrame,
               reload: Callable[[], tuple[pd.DataFrame, pd.DataFrame]] | None = None) -> None:
        """A session logged in: re-key its events to the user, leaving the state exactly as if they
        had been the user's all along (as `OnlineState.absorb` does), in one atomic COMMIT.

        Both owners' co-occurrence pairs are subtracted and the joint log's (`seq` order) added;
        the session's history, seen items and profile are deleted and the user's rebuilt from the
        joint log. Events of either log not applied yet (still in the stream, or stored by another
        process that has not applied them) are applied by this change, under the user, and
        recorded as applied, so that their later delivery is a duplicate. Popularity is unchanged
        for the others (the same events, counted once).

        Other processes may apply events of either owner meanwhile. The owners' versions are read
        first and checked by COMMIT; `reload` (which must return the current `(user_events,
        session_events)` from the log, claiming session events stored since) is called after that
        read, so any event applied before it is in the logs and any applied after it makes the
        COMMIT conflict and the merge start over. Without `reload` the logs given must be complete."""
        for _ in range(MAX_ATTEMPTS):
            session, user = self.owners.get(session_key), self.owners.add(user_key)
            landmark, (session_version, user_version) = self._pin([session, user])
            if reload is not None:
                user_events, session_events = reload()
            plan = self.new_plan()
            session_done, user_done = self._plan_ids(plan, session_events), self._plan_ids(plan, user_events)
            self._plan_drop_owner(plan, session, session_version, session_events[session_done])
            self._plan_drop_owner(plan, user, user_version, user_events[user_done])
            if session is not None:
                plan.drop_id(session_key)  # the merged session's id leaves the owner map
            joint = pd.concat([user_events.assign(_new=~user_done), session_events.assign(_new=~session_done)],
                              ignore_index=True).sort_values("seq", kind="stable", ignore_index=True)
            if len(joint):
                joint = joint.assign(user_id=user_key)
                bulk.plan_log(self, plan, joint, np.full(len(joint), user, dtype=np.int64),
                              np.full(len(joint), user_key, dtype=object), bulk.intern_items(self, joint),
                              self.catalog.records(), landmark, lambda _owner: (), new=joint["_new"].to_numpy(bool))
            if self.commit(plan) == "ok":
                if session is not None:
                    self.owners.clear_cache()
                return
        raise StateConflictError(f"merging a session into {user_key!r} conflicted {MAX_ATTEMPTS} times with concurrent writers")

    def forgotten(self, event_ids: list[str]) -> list[bool]:
        """True for events of deleted users (the deletion set; one round trip per batch)."""
        if not event_ids:
            return []
        return [bool(v) for v in self.client.smismember(self.keys.forgotten, event_digests(event_ids))]

    def _pin(self, owners: list[int | None]) -> tuple[float | None, list[int]]:
        """The trending landmark and these owners' versions (0 for None), read at one instant."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hget(self.keys.meta, "landmark")
        pipe.hmget(self.keys.versions, [-1 if owner is None else owner for owner in owners])
        landmark, versions = pipe.execute()
        return (float(landmark) if landmark else None), [int(v or 0) for v in versions]

    def _plan_ids(self, plan: CommitPlan, events: pd.DataFrame) -> np.ndarray:
        """Keep applied ids consistent: those applied must still be at COMMIT, the others are
        recorded as applied by it. Returns the mask of the applied ones."""
        ids = events["event_id"].astype(str).to_numpy() if len(events) else np.empty(0, dtype=object)
        done = bulk.applied_mask(self, ids)
        plan.require_applied(ids[done].tolist())
        plan.mark_applied(ids[~done].tolist())
        return done

    def _plan_drop_owner(self, plan: CommitPlan, owner: int | None, version: int,
                         applied: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forget the owner's history, seen items and profile (read at `version`), and subtract the
        co-occurrence pairs of their `applied` events (all of them, in `seq` order). Returns those
        events' (items, weights, ts)."""
        if owner is not None:
            plan.forget_owner(owner)
            plan.check_versions([owner], [version])
        applied = applied[applied["item_id"].notna()]
        weights = self.weights.of_frame(applied)
        ts = applied["ts"].to_numpy(dtype=np.float64)
        mirror = self.catalog.item_ids
        items = np.array([mirror.get(i) for i in applied["item_id"]], dtype=np.int64)
        if len(items):
            self.cooc.plan_log(plan, np.zeros(len(items), dtype=np.int64), items, weights, ts, sign=-1.0)
        return items, weights, ts

    # -- lifecycle ---------------------------------------------------------------------------
    def fingerprint(self) -> str:
        """The settings the stored state depends on: a state built with others is unusable."""
        s = self.settings
        basis = [self.weights.basis(), s.cooc_window, s.cooc_gap_tau, s.trending_halflife,
                 s.interest_halflife, s.history_len, STATE_FORMAT, s.cooc_max_neighbours, s.cooc_evict_halflife]
        return hashlib.sha256(json.dumps(basis).encode()).hexdigest()[:16]

    def restore(self, store: SQLiteStore, progress: Callable[[int], None] | None = None) -> None:
        """Attach to the store's state in Redis: load it from the log only if Redis has none.

        If another process is loading it, wait; if Redis already holds it, only events stored
        after its watermark `synced_seq` that are not applied yet are applied (see `sync`)."""
        store_id = store.ensure_meta("store_id", uuid.uuid4().hex)
        deadline = time.monotonic() + INIT_WAIT_S
        while True:
            owner_store, fingerprint, ready = self.client.hmget(self.keys.meta, "store_id", "fingerprint", "ready")
            if owner_store is not None and owner_store.decode() != store_id:
                raise StateBackendError(
                    f"Redis namespace {self.keys.namespace!r} at {self.settings.state_url} holds the state of another "
                    f"store ({owner_store.decode()}, this one is {store_id}); use another state_namespace, or "
                    "`pulserec rebuild-state` to replace it"
                )
            if fingerprint is not None and fingerprint.decode() != self.fingerprint():
                raise StateBackendError(
                    f"Redis namespace {self.keys.namespace!r} was built with different settings (event weights, window, "
                    "half-lives or history length) or by a pulserec with another state format; run "
                    "`pulserec rebuild-state` to rebuild it with these"
                )
            if ready:
                self.state_id = self.identity()[0]
                self.catch_up(store, progress)
                return
            if self._load_if_first(store, store_id, progress):
                return
            if time.monotonic() > deadline:
                raise StateBackendError(f"gave up waiting {INIT_WAIT_S:.0f}s for another process to load the Redis state")
            time.sleep(0.1)

    def catch_up(self, store: SQLiteStore, progress: Callable[[int], None] | None = None) -> int:
        """Apply the stored events no process applied (a crash or an outage left them); returns
        how many events after the watermark were read."""
        return sync.sync(self, store, progress=progress)

    def rebuild(self, store: SQLiteStore, progress: Callable[[int], None] | None = None) -> None:
        """Recovery: drop this namespace's state and replay the whole log into it."""
        store_id = store.ensure_meta("store_id", uuid.uuid4().hex)
        if not self._load_if_first(store, store_id, progress, force=True):
            raise StateBackendError("another process is loading the Redis state; try again when it is done")

    def recover(self, store: SQLiteStore) -> bool:
        """The namespace is lost or half-loaded: replay the log into it, unless another process
        already is (False)."""
        return self._load_if_first(store, store.ensure_meta("store_id", uuid.uuid4().hex), None)

    def _load_if_first(self, store: SQLiteStore, store_id: str, progress: Callable[[int], None] | None,
                       force: bool = False) -> bool:
        """Load the namespace from the log if this process wins the init lock."""
        token = uuid.uuid4().hex
        if not self.client.set(self.keys.init_lock, token, nx=True, ex=INIT_LOCK_S):
            return False

        def loaded(n: int) -> None:
            self.client.expire(self.keys.init_lock, INIT_LOCK_S)  # still loading
            if progress:
                progress(n)

        try:
            if not force and self.client.hget(self.keys.meta, "ready"):
                self.state_id = self.identity()[0]
                return True  # someone finished loading between our check and the lock
            started = time.perf_counter()
            self._loading = True
            self.reset()
            self.state_id = uuid.uuid4().hex
            self.client.hset(self.keys.meta, mapping={"store_id": store_id, "fingerprint": self.fingerprint(),
                                                      "state_id": self.state_id})
            self.catalog.upsert_many(store.load_items())
            sync.sync(self, store, progress=loaded)
            self.client.hset(self.keys.meta, "ready", 1)
            log.info("loaded Redis state from %d events in %.2fs", self.applied, time.perf_counter() - started)
            return True
        finally:
            self._loading = False
            if self.client.get(self.keys.init_lock) == token.encode():
                self.client.delete(self.keys.init_lock)

    def reset(self) -> None:
        """Delete this namespace's state (not its epoch, init lock or deletion set: streams still
        hold deleted users' events after a rebuild) and bump the epoch."""
        keep = {self.keys.epoch.encode(), self.keys.init_lock.encode(), self.keys.forgotten.encode()}
        batch: list[Any] = []
        for key in self.client.scan_iter(match=self.keys.pattern, count=1000):
            if key not in keep:
                batch.append(key)
            if len(batch) >= 1000:
                self.client.unlink(*batch)
                batch = []
        if batch:
            self.client.unlink(*batch)
        self.client.incr(self.keys.epoch)
        self.owners.clear_cache()
        self.catalog.clear_cache()
        self.read_cache.clear()
        self._epoch = None
