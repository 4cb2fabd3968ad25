"""One read request's view of the Redis state, in two pipelined round trips.

1. One MULTI/EXEC: the READ script (the owner's index, history and seen items, the catalogue
   changes this process has not seen yet, the clock and counters) plus plain GETs of the
   trending and degree vectors (large strings are much cheaper outside Lua).
2. One pipeline of GETs: the co-occurrence rows of the distinct recent items the query uses.

Rows or vectors a request needs beyond that are fetched lazily and kept for the rest of it.
Rows are read just after step 1, so they may include a few events more than its vectors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pulserec.online.history import Touch
from pulserec.online.redis.codec import decode_seen, decode_vector

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState


@dataclass
class Snapshot:
    owner_key: str | None
    owner: int | None
    history: list[Touch]
    seen: set[int]
    rows: dict[int, bytes]
    now: float
    landmark: float | None
    applied: int
    cooc_entries: int
    trending: np.ndarray | None
    degree: np.ndarray | None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


def fetch_snapshot(state: RedisState, owner_key: str | None, with_vectors: bool = True) -> Snapshot:
    """Read one snapshot and bring the local catalogue mirror up to date with it."""
    catalog, keys = state.catalog, state.keys
    for _ in range(2):
        pipe = state.client.pipeline(transaction=True)
        state.scripts.read(args=[keys.prefix, owner_key or "", catalog.version, catalog.mirrored], client=pipe)
        if with_vectors:
            pipe.get(keys.vector("trending"))
            pipe.get(keys.vector("degree"))
        reply, *vectors = pipe.execute()
        (owner, hist, seen, new_ids, changed, records, created, version,
         now, landmark, applied, cooc_entries, epoch, state_id, ready) = reply
        state.check_identity(state_id.decode(), bool(ready))  # raises StateUnavailable if lost
        if state.check_epoch(int(epoch)):  # the namespace was reset: the mirror was dropped, read again
            continue
        catalog.absorb(new_ids, changed, records, created, int(version))
        break
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
    )


def query_items(history: list[Touch], limit: int) -> list[int]:
    """The distinct items of a history, most recent first, as `build_query` will pick them."""
    picked: dict[int, None] = {}
    for touch in reversed(history):
        if len(picked) >= limit:
            break
        picked.setdefault(touch.item)
    return list(picked)


def fetch_rows(state: RedisState, items: list[int]) -> dict[int, bytes]:
    """Co-occurrence rows of `items`, in one pipelined round trip."""
    if not items:
        return {}
    pipe = state.client.pipeline(transaction=False)
    for item in items:
        pipe.get(state.keys.row(item))
    return {item: blob or b"" for item, blob in zip(items, pipe.execute())}
