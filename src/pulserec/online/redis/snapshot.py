"""One read request's view of the Redis state, fetched with a single script call.

The READ script returns, atomically: the owner's index, history and seen items, the
co-occurrence rows of the distinct items the query will use, the catalogue changes this
process has not seen yet, the clock and counters, and the trending and degree vectors. Rows
or vectors a request needs beyond that are fetched lazily and kept for the rest of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pulserec.online.history import Touch
from pulserec.online.redis.codec import TOUCH, decode_seen, decode_vector

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
    """Run READ, bring the local catalogue mirror up to date, and decode the answer."""
    catalog = state.catalog
    for _ in range(2):
        reply = state.scripts.read(args=[
            state.keys.prefix, owner_key or "", state.settings.query_len, TOUCH.itemsize,
            catalog.version, catalog.mirrored, int(with_vectors),
        ])
        (owner, hist, seen, row_items, rows, new_ids, changed, records, created, version,
         now, landmark, applied, cooc_entries, trending, degree, epoch) = reply
        if state.check_epoch(int(epoch)):  # the namespace was reset: the mirror was dropped, read again
            continue
        catalog.absorb(new_ids, changed, records, created, int(version))
        break
    n_items = len(catalog.mirror)
    return Snapshot(
        owner_key=owner_key,
        owner=None if owner < 0 else int(owner),
        history=state.codes.decode_touches(hist),
        seen=decode_seen(seen),
        rows=dict(zip(row_items, rows)),
        now=float(now) if now else -math.inf,
        landmark=float(landmark) if landmark else None,
        applied=int(applied),
        cooc_entries=int(cooc_entries),
        trending=decode_vector(trending, n_items) if with_vectors else None,
        degree=decode_vector(degree, n_items) if with_vectors else None,
    )
