"""What users of one attribute value engage with (issue 14.5: demographic cold start), from the log.

A segment is the users whose declared attribute (`PUT /users/{id}` attrs; which ones count is the
setting `user_attributes`) has one value: `country = DE`, `plan = pro`. Its engagement is the
weighted (type x dwell, as everywhere) and time-decayed sum of its users' item events, read
from the newest `MAX_EVENTS` events of the log joined with the users table. Each segment is
cached and read again once the log has grown by `REFRESH_EVENTS` or `REFRESH_S` passed, so a
cold-start request costs a dictionary lookup, and a deleted user's share leaves the cache at
the next deletion (the cache is dropped on every deletion).

:class:`LogSegments` is the same over a log held in memory, read as of a position in it: the
ranker's training replays the log and must see each segment as it was then (no future events)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pulserec.event_weights import EventWeights
from pulserec.events import SESSION_PREFIX
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


def engagement_of(frame: pd.DataFrame, weighting: EventWeights, rate: float) -> dict[str, float]:
    """Item id -> summed event weight decayed by age before the frame's newest event (`rate`
    per second): a segment's engagement, from its users' item events (item_id, type, ts, dwell)."""
    if frame.empty:
        return {}
    ts = frame["ts"].to_numpy(dtype=np.float64)
    weights = weighting.of_frame(frame) * np.exp(-rate * (ts.max() - ts))
    summed = pd.Series(np.nan_to_num(weights, nan=1.0)).groupby(frame["item_id"].to_numpy()).sum()
    return {str(item): float(w) for item, w in summed.items()}


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
        return self.engagements([(attribute, value)])[0]

    def engagements(self, segments: Sequence[tuple[str, Any]]) -> list[dict[str, float]]:
        """`engagement` of each (attribute, value), the log's head read once for all of them (a
        cold request asks one segment per declared attribute)."""
        head = self.store.max_seq()
        return [self._engagement(attribute, value, head) for attribute, value in segments]

    def _engagement(self, attribute: str, value: Any, head: int) -> dict[str, float]:
        key = (attribute, value)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and head - cached[0] < REFRESH_EVENTS and time.monotonic() - cached[1] < REFRESH_S:
            return cached[2]
        with self.store.connection() as db:
            frame = pd.read_sql_query(_SEGMENT_EVENTS, db, params=(MAX_EVENTS, f'$."{attribute}"', value))
        out = engagement_of(frame, self.weighting, self.rate)
        with self._lock:
            self._cache[key] = (head, time.monotonic(), out)
        return out

    def forget(self) -> None:
        """Drop every cached segment (a user was deleted: their share must go)."""
        with self._lock:
            self._cache.clear()


class LogSegments:
    """:class:`Segments` over a time-ordered log in memory (columns owner, item_id, type, ts and
    optionally dwell_seconds), as of the first `position` events (:meth:`at`): the newest
    `MAX_EVENTS` user item events before it, each segment read again once `REFRESH_EVENTS`
    more have arrived, as the served segments are."""

    def __init__(self, log: pd.DataFrame, attrs: Mapping[str, Mapping[str, Any]], weighting: EventWeights,
                 halflife: float) -> None:
        owners = log["owner"].astype(str)
        users = log["item_id"].notna().to_numpy() & ~owners.str.startswith(SESSION_PREFIX).to_numpy()
        self.rows = np.flatnonzero(users)  # the log rows a segment may count, in log order
        columns = [c for c in ("item_id", "type", "ts", "dwell_seconds") if c in log]
        self.frame = log.iloc[self.rows][columns].reset_index(drop=True)
        self.owner_attrs = [attrs.get(owner, {}) for owner in owners.iloc[self.rows].tolist()]
        self.weighting = weighting
        self.rate = np.log(2.0) / halflife
        self.position = 0
        self._values: dict[str, np.ndarray] = {}
        self._cache: dict[tuple[str, Any], tuple[int, dict[str, float]]] = {}

    def at(self, position: int) -> None:
        """Read segments as of the first `position` log events."""
        self.position = position

    def _column(self, attribute: str) -> np.ndarray:
        if attribute not in self._values:
            self._values[attribute] = np.array([a.get(attribute) for a in self.owner_attrs], dtype=object)
        return self._values[attribute]

    def engagements(self, segments: Sequence[tuple[str, Any]]) -> list[dict[str, float]]:
        return [self.engagement(attribute, value) for attribute, value in segments]

    def engagement(self, attribute: str, value: Any) -> dict[str, float]:
        end = int(np.searchsorted(self.rows, self.position, side="left"))  # user item events before it
        key = (attribute, value)
        cached = self._cache.get(key)
        if cached is not None and 0 <= end - cached[0] < REFRESH_EVENTS:
            return cached[1]
        start = max(0, end - MAX_EVENTS)
        members = np.flatnonzero(self._column(attribute)[start:end] == value) + start
        out = engagement_of(self.frame.iloc[members], self.weighting, self.rate)
        self._cache[key] = (end, out)
        return out
