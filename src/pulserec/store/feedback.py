"""Impressions, experiments and feedback counts, in the same SQLite file as the event log."""

from __future__ import annotations

import json
from typing import Any

from pulserec.store.sqlite import SQLiteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS impressions (
    rec_id     TEXT PRIMARY KEY,
    user_id    TEXT,
    session_id TEXT,
    strategy   TEXT NOT NULL,
    experiment TEXT,
    variant    TEXT,
    items      TEXT NOT NULL,
    ts         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS impressions_experiment ON impressions(experiment, variant);
CREATE INDEX IF NOT EXISTS events_rec ON events(rec_id) WHERE rec_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS impression_slots (
    rec_id     TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    PRIMARY KEY (rec_id, item_id, kind)
);
CREATE INDEX IF NOT EXISTS impression_slots_kind ON impression_slots(kind, name);
CREATE TABLE IF NOT EXISTS experiments (
    name       TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    updated_ts REAL NOT NULL
);
"""

#: Event types that count as a click on a recommendation, and as a conversion.
CLICK_TYPES = ("click", "view", "like", "share", "add_to_cart", "purchase")
CONVERSION_TYPES = ("purchase",)


class FeedbackStore:
    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.forgotten = 0  # users forgotten: counts derived from impressions must be rebuilt
        with store.connection() as db:
            db.executescript(_SCHEMA)

    def add_impression(self, rec_id: str, user_id: str | None, session_id: str | None, strategy: str,
                       experiment: str | None, variant: str | None, items: list[str], ts: float,
                       slots: list[tuple[str, str, str]] | None = None) -> bool:
        """Record what was shown; returns False if this recommendation id was already recorded.
        `slots`: (item_id, kind, name) of the shown items a promotion or exploration placed."""
        with self.store.connection() as db:
            cursor = db.execute(
                "INSERT INTO impressions (rec_id, user_id, session_id, strategy, experiment, variant, items, ts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(rec_id) DO NOTHING",
                (rec_id, user_id, session_id, strategy, experiment, variant, json.dumps(items), ts),
            )
            if cursor.rowcount == 1 and slots:
                db.executemany("INSERT INTO impression_slots (rec_id, item_id, kind, name) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT DO NOTHING", [(rec_id, *slot) for slot in slots])
            return cursor.rowcount == 1

    def slot_outcomes(self, kind: str) -> dict[str, dict[str, Any]]:
        """Per name (a promotion's): slots shown, slots clicked (an engagement event carrying the
        recommendation id on that very item) and their CTR."""
        clicks = ", ".join("?" * len(CLICK_TYPES))
        sql = f"""
            SELECT s.name, COUNT(*),
                   SUM(EXISTS (SELECT 1 FROM events e WHERE e.rec_id = s.rec_id AND e.item_id = s.item_id
                                                         AND e.type IN ({clicks})))
            FROM impression_slots s WHERE s.kind = ? GROUP BY s.name ORDER BY s.name
        """
        with self.store.connection() as db:
            rows = db.execute(sql, [*CLICK_TYPES, kind]).fetchall()
        return {name: {"impressions": n, "clicks": int(c or 0), "ctr": (c or 0) / n if n else 0.0} for name, n, c in rows}

    def put_experiment(self, name: str, config: dict[str, Any], ts: float) -> None:
        with self.store.connection() as db:
            db.execute(
                "INSERT INTO experiments (name, config, updated_ts) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET config=excluded.config, updated_ts=excluded.updated_ts",
                (name, json.dumps(config), ts),
            )

    def experiments(self) -> dict[str, dict[str, Any]]:
        with self.store.connection() as db:
            rows = db.execute("SELECT name, config FROM experiments").fetchall()
        return {name: json.loads(config) for name, config in rows}

    def delete_experiment(self, name: str) -> bool:
        with self.store.connection() as db:
            return db.execute("DELETE FROM experiments WHERE name = ?", (name,)).rowcount == 1

    def _counts(self, columns: tuple[str, ...], experiment: str | None = None) -> list[tuple[Any, ...]]:
        """(*group, impressions, clicked, converted, users) per group of impression columns."""
        if not set(columns) <= {"strategy", "variant"}:
            raise ValueError("group by strategy and/or variant")
        clicks = ", ".join("?" * len(CLICK_TYPES))
        conversions = ", ".join("?" * len(CONVERSION_TYPES))
        where, params = ("WHERE i.experiment = ?", [experiment]) if experiment else ("", [])
        group = ", ".join(f"i.{c}" for c in columns)
        sql = f"""
            SELECT {group}, COUNT(*) AS impressions,
                   SUM(EXISTS (SELECT 1 FROM events e WHERE e.rec_id = i.rec_id AND e.type IN ({clicks}))) AS clicked,
                   SUM(EXISTS (SELECT 1 FROM events e WHERE e.rec_id = i.rec_id AND e.type IN ({conversions}))) AS converted,
                   COUNT(DISTINCT COALESCE(i.user_id, i.session_id)) AS users
            FROM impressions i {where} GROUP BY {group} ORDER BY {group}
        """
        with self.store.connection() as db:
            return db.execute(sql, [*CLICK_TYPES, *CONVERSION_TYPES, *params]).fetchall()

    def outcomes(self, group_by: str, experiment: str | None = None) -> list[dict[str, Any]]:
        """Impressions, clicked and converted impressions per `strategy` or per experiment `variant`."""
        return [
            {"name": grp, "impressions": n, "clicked": int(c or 0), "converted": int(v or 0), "users": u,
             "ctr": (c or 0) / n if n else 0.0, "conversion_rate": (v or 0) / n if n else 0.0}
            for grp, n, c, v, u in self._counts((group_by,), experiment)
        ]

    def engagement_rows(self) -> list[dict[str, Any]]:
        """Outcome counts per (strategy, A/B variant), for the dashboard."""
        return [
            {"strategy": strategy, "variant": variant, "impressions": n, "clicks": int(c or 0), "conversions": int(v or 0)}
            for strategy, variant, n, c, v, _ in self._counts(("strategy", "variant"))
        ]

    def impressions_after(self, rowid: int, limit: int = 50_000) -> list[tuple[int, str, str]]:
        """(rowid, rec_id, items JSON) of the impressions recorded after `rowid`, oldest first."""
        with self.store.connection() as db:
            return db.execute("SELECT rowid, rec_id, items FROM impressions WHERE rowid > ? ORDER BY rowid LIMIT ?",
                              (rowid, limit)).fetchall()

    def clicks_after(self, seq: int, limit: int = 50_000) -> list[tuple[int, str, str]]:
        """(seq, rec_id, item_id) of the engagement events after `seq` that carry a recommendation id."""
        clicks = ", ".join("?" * len(CLICK_TYPES))
        with self.store.connection() as db:
            return db.execute(f"SELECT seq, rec_id, item_id FROM events WHERE seq > ? AND rec_id IS NOT NULL "
                              f"AND item_id IS NOT NULL AND type IN ({clicks}) ORDER BY seq LIMIT ?",
                              (seq, *CLICK_TYPES, limit)).fetchall()

    def forget_user(self, user_id: str) -> None:
        self.forgotten += 1  # aggregates over impressions (exploration's exposure) are rebuilt
        with self.store.connection() as db:
            db.execute("DELETE FROM impression_slots WHERE rec_id IN (SELECT rec_id FROM impressions WHERE user_id = ?)", (user_id,))
            db.execute("DELETE FROM impressions WHERE user_id = ?", (user_id,))
