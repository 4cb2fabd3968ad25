"""One read request's view of the Redis state, in two pipelined round trips.

1. The READ script (the owner's index, history and seen items, the catalogue changes this
   process has not seen yet, the clock and counters, and the trending and degree vectors if
   they changed since this process last read them; see `read_cache`).
2. One ROWS script call: the co-occurrence rows of the distinct items the query uses (only
   the bytes appended since this process cached them; nothing for rows that did not change).

Rows or vectors a request needs beyond that are fetched lazily and kept for the rest of it.
Rows are read just after step 1, so they may include a few events more than its vectors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pulserec.online.history import Touch
from pulserec.online.redis.codec import decode_seen, decode_vector
from pulserec.online.redis.read_cache import EMPTY_ROW, CachedRow, decoded_row

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState


@dataclass
class Snapshot:
    owner_key: str | None
    owner: int | None
    history: list[Touch]
    seen: set[int]
    rows: dict[int, tuple[np.ndarray, np.ndarray]]
    now: float
    landmark: float | None
    applied: int
    cooc_entries: int
    trending: np.ndarray | None
    degree: np.ndarray | None
    vec_ver: str = ""
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    #: The owner's (qt, qn, latest query) profile fields, raw (see `profiles.search_mark`).
    mark: list[bytes | None] = field(default_factory=list)


def fetch_snapshot(state: RedisState, owner_key: str | None, with_vectors: bool = True) -> Snapshot:
    """Read one snapshot and bring the local catalogue mirror up to date with it."""
    catalog, keys, cache = state.catalog, state.keys, state.read_cache
    for _ in range(2):
        held = cache.vec_ver if with_vectors else "-"
        (owner, hist, seen, new_ids, changed, records, created, version, now, landmark, applied, cooc_entries,
         epoch, state_id, ready, vec_ver, trending, degree, drops, mark) = state.scripts.read(
            args=[keys.prefix, owner_key or "", catalog.version, catalog.mirrored, held])
        state.check_identity(state_id.decode(), bool(ready))  # raises StateUnavailable if lost
        if state.check_epoch(int(epoch)):  # the namespace was reset: the caches were dropped, read again
            continue
        state.owners.check_generation(int(drops))  # ids unmapped by a deletion anywhere: indices anew
        catalog.absorb(new_ids, changed, records, created, int(version))
        if trending is not None:
            cache.vec_ver, cache.vectors = vec_ver.decode(), (trending, degree)
        break
    vectors = cache.vectors
    n_items = len(catalog.mirror)
    history = state.codes.decode_touches(hist)
    seen = decode_seen(seen)
    wanted = query_items(history, state.settings.query_len)
    if state.settings.long_term_weight > 0:  # the query holds the whole history too (models/query.py)
        wanted += sorted(seen.difference(wanted))
    return Snapshot(
        owner_key=owner_key,
        owner=None if owner < 0 else int(owner),
        history=history,
        seen=seen,
        rows=fetch_rows(state, wanted),
        now=float(now) if now else -math.inf,
        landmark=float(landmark) if landmark else None,
        applied=int(applied),
        cooc_entries=int(cooc_entries),
        trending=decode_vector(vectors[0], n_items) if with_vectors else None,
        degree=decode_vector(vectors[1], n_items) if with_vectors else None,
        vec_ver=vec_ver.decode(),
        mark=mark,
    )


def query_items(history: list[Touch], limit: int) -> list[int]:
    """The distinct items of a history, most recent first, as `build_query` will pick them."""
    picked: dict[int, None] = {}
    for touch in reversed(history):
        if len(picked) >= limit:
            break
        picked.setdefault(touch.item)
    return list(picked)


def fetch_rows(state: RedisState, items: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Co-occurrence rows of `items` as (other items, weights), read-only (see `fetch_rows_at`)."""
    return {item: (row.items, row.weights) for item, row in fetch_rows_at(state, items).items()}


def fetch_rows_at(state: RedisState, items: list[int]) -> dict[int, CachedRow]:
    """The co-occurrence rows of `items`, current as of one ROWS script call: for each row this
    process holds, only the bytes appended since (nothing at all for an unchanged row), a row
    compacted since (another generation) or not held whole."""
    items = list(dict.fromkeys(items))  # each row once: a tail must be added to its row once
    if not items:
        return {}
    cache = state.read_cache
    held = [cache.rows.get(item, EMPTY_ROW) for item in items]
    packed = [np.array(column, dtype="<i4").tobytes() for column in (items, [r.gen for r in held], [r.nbytes for r in held])]
    reply = state.scripts.rows(args=[state.keys.prefix, *packed])
    out = dict(zip(items, held))
    for k in range(0, len(reply), 4):
        item, gen, whole, data = int(reply[k]), int(reply[k + 1]), reply[k + 2], reply[k + 3]
        out[item] = decoded_row(gen, data) if whole else out[item].extended(gen, data)
        cache.keep_row(item, out[item])
    return out
