"""Bulk apply of stored events (rebuilds, imports, catch-up) to the Redis state.

Mirrors `OnlineState.apply_frame`: co-occurrence pairs are formed within the frame, and
popularity, histories and profiles are folded in with the same vectorised functions. Events
are committed in groups of whole owners (everything an event changes is per owner, except
the commutative popularity and co-occurrence additions), each group atomically and checked
against concurrent writers like a single event. `plan_log` also rebuilds a user from their
joint log when a session logs in (`RedisState.absorb`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pulserec.events import Event, owner_keys
from pulserec.online.cooccurrence import with_context
from pulserec.online.redis.codec import TOUCH
from pulserec.online.redis.connection import MAX_ATTEMPTS, StateConflictError, StateUnavailable
from pulserec.online.redis.profile_deltas import profile_deltas
from pulserec.store.sqlite import EVENT_COLUMNS

if TYPE_CHECKING:
    from pulserec.online.history import Touch
    from pulserec.online.redis.plan import CommitPlan
    from pulserec.online.redis.state import RedisState

#: Events per atomic commit (bounds how long one script blocks Redis).
GROUP_EVENTS = 5_000


def applied_mask(state: RedisState, event_ids: np.ndarray) -> np.ndarray:
    """True for ids already applied (SMISMEMBER, pipelined in chunks)."""
    if len(event_ids) == 0:
        return np.zeros(0, dtype=bool)
    pipe = state.client.pipeline(transaction=False)
    for start in range(0, len(event_ids), 10_000):
        pipe.smismember(state.keys.applied, event_ids[start : start + 10_000].tolist())
    return np.fromiter((bool(v) for chunk in pipe.execute() for v in chunk), dtype=bool, count=len(event_ids))


def event_ids(frame: pd.DataFrame) -> np.ndarray:
    """The frame's event ids as an object array of str (as stored and as decoded from a stream
    they are str already: pandas' astype(str) built an Arrow string array, ~2 us an event)."""
    ids = frame["event_id"].to_numpy(dtype=object)
    return ids if set(map(type, ids)) <= {str} else frame["event_id"].astype(str).to_numpy(dtype=object)


def events_frame(batch: list[tuple[Event, int]]) -> pd.DataFrame:
    """(event, seq) pairs as a stored-event frame (seq + EVENT_COLUMNS, context as JSON text)."""
    frame = pd.DataFrame([event.row() for event, _ in batch], columns=list(EVENT_COLUMNS))
    frame.insert(0, "seq", np.fromiter((seq for _, seq in batch), dtype=np.int64, count=len(batch)))
    return frame


def apply_frame(state: RedisState, frame: pd.DataFrame, look_first: bool = True) -> np.ndarray:
    """Apply the frame's events not applied yet; returns the mask of those this call applied
    (False for ids applied before, by anyone, and for repeats of an id within the frame).

    `look_first` asks Redis which ids are applied before planning anything (a catch-up reads
    mostly applied events). Without it (a stream batch: new but for redeliveries) COMMIT's own
    check finds them ('dup'), and the group is planned again without them."""
    applied = np.zeros(len(frame), dtype=bool)
    if frame.empty:
        return applied
    ids = event_ids(frame)
    todo = ~pd.Series(ids).duplicated().to_numpy()
    if look_first:
        todo &= ~applied_mask(state, ids)
    if not todo.any():
        return applied
    positions = np.flatnonzero(todo)
    frame = frame.iloc[positions].reset_index(drop=True)
    owner_ids = owner_keys(frame)
    owners = state.owners.add_many(owner_ids)
    items = intern_items(state, frame)
    records = state.catalog.mirror.records()  # synced by intern_items: categories and tags for profiles
    for rows in _owner_groups(owners):
        done = _commit_group(state, frame.iloc[rows].reset_index(drop=True), owners[rows], owner_ids[rows], items[rows],
                             records)
        applied[positions[rows[done]]] = True
    return applied


def intern_items(state: RedisState, frame: pd.DataFrame) -> np.ndarray:
    """Catalogue indices of a frame's items (-1 for none); new items are created at their first
    event. Items the local mirror knows are looked up there (ids never change within an epoch).
    Afterwards the mirror holds every item of the frame (one READ, two when some were new)."""
    has_item = frame["item_id"].notna().to_numpy()
    items = np.full(len(frame), -1, dtype=np.int64)
    known = state.catalog.synced().item_ids  # synced with Redis by this read
    if has_item.any():
        # Plain dicts over the rows: pandas' loc/drop_duplicates cost ~7 us an event on an updater's batches.
        rows = np.flatnonzero(has_item)
        ids = frame["item_id"].to_numpy(dtype=object)[rows].tolist()
        lookup = {item_id: known.get(item_id) for item_id in ids}
        unknown = [item_id for item_id, idx in lookup.items() if idx is None]
        if unknown:
            first_ts = dict(zip(reversed(ids), reversed(frame["ts"].to_numpy()[rows].tolist())))  # first sighting wins
            indices = state.catalog.intern_many(unknown, [first_ts[item_id] for item_id in unknown])
            lookup.update(zip(unknown, indices.tolist()))
            state.catalog.synced()  # the mirror takes the new items and their records
        items[rows] = [lookup[item_id] for item_id in ids]
    return items


def _owner_groups(owners: np.ndarray) -> list[np.ndarray]:
    """Row positions (arrival order kept) split into groups of whole owners of ~GROUP_EVENTS."""
    codes, _ = pd.factorize(owners)
    counts = np.bincount(codes)
    group_of_owner = np.cumsum(counts) // GROUP_EVENTS
    group = group_of_owner[codes]
    return [np.flatnonzero(group == g) for g in np.unique(group)]


def _commit_group(state: RedisState, frame: pd.DataFrame, owners: np.ndarray, owner_ids: np.ndarray, items: np.ndarray,
                  records: list) -> np.ndarray:
    """Commit one group atomically; returns the mask of its rows this commit applied."""

    applied = np.ones(len(frame), dtype=bool)
    rows = np.arange(len(frame))
    context_bytes = state.cooc.window * TOUCH.itemsize
    for attempt in range(MAX_ATTEMPTS):
        generation = state.owners.generation
        if attempt:  # 'stale' dropped the cached indices (another process unmapped an id): anew
            owners = state.owners.add_many(owner_ids)
        distinct = np.unique(owners)
        # One MULTI: what the group's change depends on, read at one instant (checked by COMMIT).
        pipe = state.client.pipeline(transaction=True)
        pipe.hmget(state.keys.versions, distinct.tolist())
        pipe.hget(state.keys.meta, "landmark")
        for owner in distinct.tolist():
            pipe.getrange(state.keys.history(owner), -context_bytes, -1)
        versions, landmark, *tails = pipe.execute()
        context = dict(zip(distinct.tolist(), tails))

        plan = state.new_plan(generation)
        plan.mark_applied(event_ids(frame).tolist())
        plan.check_versions(distinct, [int(v or 0) for v in versions])
        plan_log(state, plan, frame, owners, owner_ids, items, records, float(landmark) if landmark else None,
                 lambda owner: state.codes.decode_touches(context.get(owner)))
        status = state.commit(plan)
        if status == "ok":
            return applied
        if status == "lost":  # reloaded by another process: these indices are stale, start over
            raise StateUnavailable("the Redis state was reloaded from the log meanwhile; apply again")
        if status == "dup":  # another process applied some of these meanwhile: drop them
            keep = ~applied_mask(state, event_ids(frame))
            applied[rows[~keep]] = False
            rows = rows[keep]
            frame, owners, owner_ids, items = frame[keep].reset_index(drop=True), owners[keep], owner_ids[keep], items[keep]
            if frame.empty:
                return applied
    raise StateConflictError(f"a bulk group of {len(frame)} events conflicted {MAX_ATTEMPTS} times with concurrent writers")


def plan_log(state: RedisState, plan: CommitPlan, frame: pd.DataFrame, owners: np.ndarray, owner_ids: np.ndarray,
             items: np.ndarray, records: list, landmark: float | None, recent: Callable[[int], Iterable[Touch]],
             new: np.ndarray | None = None) -> None:
    """Plan what applying a log (arrival order) changes, as `OnlineState.apply_frame` does it:
    co-occurrence pairs (also with each owner's touches before the log, from `recent`), histories
    and seen items, and what the log adds to each owner's profile (merged by COMMIT). Popularity,
    the clock and the counters take only the `new` events (default: all); the others are
    already counted."""
    weights = state.weights.of_frame(frame)
    ts = frame["ts"].to_numpy(dtype=np.float64)
    sel = items >= 0
    new = np.ones(len(frame), dtype=bool) if new is None else new
    if new.any():
        counted = sel & new
        state.popularity.plan_add(plan, landmark, items[counted], weights[counted], ts[counted], float(ts[new].max()))
        plan.count(int(new.sum()), int(frame["seq"].to_numpy()[new].max()) if "seq" in frame else 0, float(ts[new].max()))
    *log, fresh = with_context(owners[sel], items[sel], weights[sel], ts[sel], recent, state.cooc.window)
    state.cooc.plan_log(plan, *log, fresh=fresh)
    types = frame["type"].to_numpy(dtype=object)
    state.histories.plan_log(plan, owners[sel], items[sel], weights[sel], ts[sel], types[sel])

    users = frame["user_id"].to_numpy(dtype=object)
    names = np.where(pd.notna(users) & (users != ""), users, owner_ids)
    plan.merge_profiles(profile_deltas(
        owners, names, types, weights, ts, items, records,
        frame["context"].to_numpy(dtype=object) if "context" in frame else None,
        frame["query"].to_numpy(dtype=object) if "query" in frame else None, plan.header["rate"]))
