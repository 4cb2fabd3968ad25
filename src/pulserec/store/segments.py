"""What users of one attribute value engage with (issue 14.5: demographic cold start), from the log.

A segment is the users whose declared attribute (`PUT /users/{id}` attrs; which ones count is the
setting `user_attributes`) has one value: `country = DE`, `plan = pro`. Its engagement is the
weighted (type x dwell, as everywhere) and time-decayed sum of its users' item events, read
from the newest `MAX_EVENTS` events of the log joined with the users table. Each segment is
cached and read again once the log has grown by `REFRESH_EVENTS` or `REFRESH_S` passed, so a
cold-start request costs a dictionary lookup, and a deleted user's share leaves the cache at
the next deletion (the cache is dropped on every deletion)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from pulserec.event_weights import EventWeights
from pulserec.store.sqlite import SQLiteStore

#: The newest events a segment is read from (a bound on the cost of one refresh).
MAX_EVENTS = 200_000
#: A cached segment is refreshed after the log grew by this many events, or this many seconds.
REFRESH_EVENTS = 1_000
REFRESH_S = 60.0

_SEGMENT_EVENTS = """
SELECT e.item_id, e.type, e.ts, e.dwell_seconds FROM
    (SELECT * FROM events WHERE item_id IS NOT NULL AND user_id IS NOT NULL ORDER BY seq DESC LIMIT ?) e
JOIN users u ON u.user_id = e.user_id
WHERE json_extract(u.attrs, ?) = ?
"""


class Segments:
    """Per (attribute, value): item id -> engagement, cached (see the module docstring)."""

    def __init__(self, store: SQLiteStore, weighting: EventWeights, halflife: float) -> None:
        self.store = store
        self.weighting = weighting
        self.rate = np.log(2.0) / halflife
        self._cache: dict[tuple[str, Any], tuple[int, float, dict[str, float]]] = {}
        self._lock = threading.Lock()

    def attrs_of(self, user_key: str) -> dict[str, Any]:
        user = self.store.get_user(user_key)
        return user["attrs"] if user else {}

    def engagement(self, attribute: str, value: Any) -> dict[str, float]:
        """Item id -> decayed weighted engagement of the users with `attribute` = `value`."""
        head = self.store.max_seq()
        key = (attribute, value)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and head - cached[0] < REFRESH_EVENTS and time.monotonic() - cached[1] < REFRESH_S:
            return cached[2]
        with self.store.connection() as db:
            frame = pd.read_sql_query(_SEGMENT_EVENTS, db, params=(MAX_EVENTS, f'$."{attribute}"', value))
        out: dict[str, float] = {}
        if not frame.empty:
            ts = frame["ts"].to_numpy(dtype=np.float64)
            weights = self.weighting.of_frame(frame) * np.exp(-self.rate * (ts.max() - ts))
            summed = pd.Series(np.nan_to_num(weights, nan=1.0)).groupby(frame["item_id"].to_numpy()).sum()
            out = {str(item): float(w) for item, w in summed.items()}
        with self._lock:
            self._cache[key] = (head, time.monotonic(), out)
        return out

    def forget(self) -> None:
        """Drop every cached segment (a user was deleted: their share must go)."""
        with self._lock:
            self._cache.clear()
