"""The dashboard's history, computed from the stored log: activity per hour or day, browsable
lists of users and items, one item's popularity over time and its recent interactors.

Computed on read rather than kept in an aggregate table updated on write: the log already has
every event, deletions (`DELETE /users/{id}`) need no second bookkeeping, and with the two
indexes below a week of hourly history reads only that week's rows (MovieLens, 100k events: ~5 ms,
~200 ms without them; an item page ~5 ms instead of ~35 ms per 100k events scanned). The price
is paid on write: SQLite's share of a bulk import took 19-90% longer with them, median 35% (paired runs in
docs/benchmarks.md; the two indexes were not measured apart). Queries run on a connection
of their own, so a slow one never holds the store's lock (ingestion goes on; WAL lets readers and
the writer run side by side)."""

from __future__ import annotations

import math
import sqlite3
import threading
from typing import Any

from pulserec.store.feedback import CLICK_TYPES, CONVERSION_TYPES
from pulserec.store.sqlite import SQLiteStore

_INDEXES = """
CREATE INDEX IF NOT EXISTS events_ts ON events(ts, type);
CREATE INDEX IF NOT EXISTS events_item ON events(item_id, ts) WHERE item_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS impressions_ts ON impressions(ts);
"""

#: Bucket widths in seconds.
BUCKETS = {"hour": 3600, "day": 86_400}
#: The most buckets one item's activity returns (a year of days); older ones are left out.
MAX_POINTS = 366
#: Columns a list can be sorted by, and the SQL each stands for.
USER_SORTS = {"user_id": "user_id", "events": "events", "first_seen": "first_seen", "last_seen": "last_seen"}
ITEM_SORTS = {"item_id": "k.item_id", "title": "i.title", "category": "i.category", "events": "events",
              "last_seen": "c.last_seen", "price": "i.price"}


class History:
    """Read-only queries for the dashboard over the store's SQLite file."""

    def __init__(self, store: SQLiteStore) -> None:
        with store.connection() as db:  # the indexes once (a few seconds on a log of millions), under the writer's lock
            db.executescript(_INDEXES)
        self._db = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, check_same_thread=False, timeout=30.0)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def newest_ts(self) -> float | None:
        """The latest event time (the default end of a range: imported logs can be years old)."""
        (ts,), = self._rows("SELECT MAX(ts) FROM events")
        return ts

    def activity(self, since: float, until: float, bucket: str = "hour") -> dict[str, Any]:
        """Per bucket in [since, until): events by type, active users and sessions, new items (by
        the catalogue's `created_ts`, else their first event), and impressions, clicks and
        conversions per strategy (CTR and conversion rate)."""
        width = BUCKETS[bucket]
        span = (since, until)
        events: dict[int, dict[str, int]] = {}
        for slot, kind, n in self._rows(
                f"SELECT CAST(ts / {width} AS INTEGER) AS slot, type, COUNT(*) FROM events "
                "WHERE ts >= ? AND ts < ? GROUP BY slot, type", span):
            events.setdefault(slot, {})[kind] = n
        active = dict(self._rows(
            f"SELECT CAST(ts / {width} AS INTEGER) AS slot, COUNT(DISTINCT COALESCE(user_id, session_id)) FROM events "
            "WHERE ts >= ? AND ts < ? GROUP BY slot", span))
        new_items = dict(self._rows(
            f"""WITH first AS (SELECT item_id, MIN(ts) AS ts FROM events WHERE item_id IS NOT NULL GROUP BY item_id),
                     born AS (SELECT k.item_id, COALESCE(i.created_ts, f.ts) AS ts
                              FROM (SELECT item_id FROM items UNION SELECT item_id FROM first) k
                              LEFT JOIN items i ON i.item_id = k.item_id LEFT JOIN first f ON f.item_id = k.item_id)
                SELECT CAST(ts / {width} AS INTEGER) AS slot, COUNT(*) FROM born WHERE ts >= ? AND ts < ? GROUP BY slot""",
            span))
        engagement = self._engagement(width, span)
        first, last = int(since // width), math.ceil(until / width) - 1  # [since, until): no slot at `until`
        series = []
        for slot in range(first, last + 1):
            by_type = events.get(slot, {})
            series.append({"t": slot * width, "events": sum(by_type.values()), "by_type": by_type,
                           "active_users": active.get(slot, 0), "new_items": new_items.get(slot, 0),
                           "strategies": engagement.get(slot, {})})
        types = sorted({kind for point in series for kind in point["by_type"]})
        strategies = sorted({name for point in series for name in point["strategies"]})
        return {"since": since, "until": until, "bucket": bucket, "bucket_s": width, "types": types,
                "strategies": strategies, "series": series}

    def _engagement(self, width: int, span: tuple[float, float]) -> dict[int, dict[str, dict[str, Any]]]:
        clicks, conversions = ", ".join("?" * len(CLICK_TYPES)), ", ".join("?" * len(CONVERSION_TYPES))
        sql = f"""
            SELECT CAST(i.ts / {width} AS INTEGER) AS slot, i.strategy, COUNT(*),
                   SUM(EXISTS (SELECT 1 FROM events e WHERE e.rec_id = i.rec_id AND e.type IN ({clicks}))),
                   SUM(EXISTS (SELECT 1 FROM events e WHERE e.rec_id = i.rec_id AND e.type IN ({conversions})))
            FROM impressions i WHERE i.ts >= ? AND i.ts < ? GROUP BY slot, i.strategy"""
        out: dict[int, dict[str, dict[str, Any]]] = {}
        for slot, strategy, shown, clicked, converted in self._rows(sql, [*CLICK_TYPES, *CONVERSION_TYPES, *span]):
            out.setdefault(slot, {})[strategy] = {
                "impressions": shown, "clicks": int(clicked or 0), "conversions": int(converted or 0),
                "ctr": round((clicked or 0) / shown, 4), "conversion_rate": round((converted or 0) / shown, 4)}
        return out

    def users(self, sort: str = "events", descending: bool = True, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """One page of the users who sent events: id, event count, first and last seen."""
        order = f"{USER_SORTS[sort]} {'DESC' if descending else 'ASC'}, user_id"
        rows = self._rows(
            "SELECT user_id, COUNT(*) AS events, MIN(ts) AS first_seen, MAX(ts) AS last_seen FROM events "
            f"WHERE user_id IS NOT NULL GROUP BY user_id ORDER BY {order} LIMIT ? OFFSET ?", (limit, offset))
        (total,), = self._rows("SELECT COUNT(DISTINCT user_id) FROM events")
        return {"total": total, "offset": offset, "limit": limit, "sort": sort, "descending": descending,
                "rows": [{"user_id": u, "events": n, "first_seen": first, "last_seen": last} for u, n, first, last in rows]}

    def items(self, sort: str = "events", descending: bool = True, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """One page of items, catalogued or only seen in events: title, category, price, event count."""
        order = f"{ITEM_SORTS[sort]} {'DESC' if descending else 'ASC'} NULLS LAST, k.item_id"
        # c: counts per item from the (item_id, ts) index; k: catalogued items and items only seen in events
        rows = self._rows(
            f"""WITH c AS MATERIALIZED (SELECT item_id, COUNT(*) AS events, MAX(ts) AS last_seen FROM events
                                        WHERE item_id IS NOT NULL GROUP BY item_id),
                     k AS (SELECT item_id FROM items UNION SELECT item_id FROM c)
                SELECT k.item_id, i.title, i.category, i.price, i.active, COALESCE(c.events, 0) AS events, c.last_seen,
                       COUNT(*) OVER () AS total
                FROM k LEFT JOIN items i ON i.item_id = k.item_id LEFT JOIN c ON c.item_id = k.item_id
                ORDER BY {order} LIMIT ? OFFSET ?""", (limit, offset))
        total = rows[0][-1] if rows else self._rows("WITH k AS (SELECT item_id FROM items UNION SELECT item_id FROM events "
                                                    "WHERE item_id IS NOT NULL) SELECT COUNT(*) FROM k")[0][0]
        return {"total": total, "offset": offset, "limit": limit, "sort": sort, "descending": descending,
                "rows": [{"item_id": i, "title": t, "category": c, "price": p, "active": None if a is None else bool(a),
                          "catalogued": a is not None, "events": n, "last_seen": last}
                         for i, t, c, p, a, n, last, _ in rows]}

    def item_activity(self, item_id: str, bucket: str = "day", recent: int = 20) -> dict[str, Any]:
        """One item's events per bucket by type, every bucket from its first event to its last (the
        latest MAX_POINTS of them), and its latest interactors."""
        width = BUCKETS[bucket]
        series: dict[int, dict[str, int]] = {}
        for slot, kind, n in self._rows(
                f"SELECT CAST(ts / {width} AS INTEGER) AS slot, type, COUNT(*) FROM events "
                "WHERE item_id = ? GROUP BY slot, type ORDER BY slot", (item_id,)):
            series.setdefault(slot, {})[kind] = n
        latest = self._rows("SELECT user_id, session_id, type, ts FROM events WHERE item_id = ? "
                            "ORDER BY ts DESC, seq DESC LIMIT ?", (item_id, recent))
        slots = range(max(min(series), max(series) - MAX_POINTS + 1), max(series) + 1) if series else range(0)
        return {"item_id": item_id, "bucket": bucket, "bucket_s": width,
                "types": sorted({kind for by_type in series.values() for kind in by_type}),
                "series": [{"t": slot * width, "events": sum(series.get(slot, {}).values()), "by_type": series.get(slot, {})}
                           for slot in slots],
                "recent": [{"user_id": u, "session_id": s, "type": k, "ts": ts} for u, s, k, ts in latest]}
