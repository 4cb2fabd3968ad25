"""Merchandising controls in the store: named filters and promotions, one JSON body per name.

They live in the app's own SQLite file beside its events, so every app (tenant) has its own."""

from __future__ import annotations

import json
from typing import Any

from pulserec.store.sqlite import SQLiteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS controls (
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    updated_ts REAL NOT NULL,
    PRIMARY KEY (kind, name)
);
"""

#: The kinds of control kept here.
KINDS = ("filter", "promotion")


class ControlStore:
    """Named JSON documents per kind (`filter`, `promotion`)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        with store.connection() as db:
            db.executescript(_SCHEMA)

    def put(self, kind: str, name: str, body: dict[str, Any], ts: float) -> bool:
        """Store `body` under `name`; True if it is new."""
        assert kind in KINDS, kind
        with self.store.connection() as db:
            existed = db.execute("SELECT 1 FROM controls WHERE kind = ? AND name = ?", (kind, name)).fetchone() is not None
            db.execute("INSERT INTO controls (kind, name, body, updated_ts) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(kind, name) DO UPDATE SET body=excluded.body, updated_ts=excluded.updated_ts",
                       (kind, name, json.dumps(body), ts))
        return not existed

    def all(self, kind: str) -> dict[str, dict[str, Any]]:
        with self.store.connection() as db:
            rows = db.execute("SELECT name, body, updated_ts FROM controls WHERE kind = ? ORDER BY name", (kind,)).fetchall()
        return {name: {**json.loads(body), "updated_at": ts} for name, body, ts in rows}

    def delete(self, kind: str, name: str) -> bool:
        with self.store.connection() as db:
            return db.execute("DELETE FROM controls WHERE kind = ? AND name = ?", (kind, name)).rowcount == 1
