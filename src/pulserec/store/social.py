"""Who follows whom (issue 14.4): directed, weighted ties between users, stored in the app's SQLite
file so they survive restarts and every process of one data dir sees them.

A tie's `weight` (tie strength, 0 < w <= MAX_WEIGHT, default 1) scales what the followed user's
actions count for the follower (models/social.py). Users are their stored keys (pseudonyms when
`pseudonymize_users` is on). Deleting a user removes their ties both ways."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from pulserec.store.sqlite import SQLiteStore

#: The strongest tie: a weight is how many "ordinary" follows one tie counts as.
MAX_WEIGHT = 100.0
#: At most this many ties are read for one user's recommendations (the strongest, then newest).
MAX_TIES = 500
#: Users whose ties are kept between reads (`ties`); the map starts again when it holds more.
CACHED_USERS = 65_536
#: The one rule of a tie its schema cannot state (it compares the two ids).
SELF_FOLLOW = "a user cannot follow themselves"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS follows (
    follower   TEXT NOT NULL,
    followee   TEXT NOT NULL,
    weight     REAL NOT NULL DEFAULT 1.0,
    created_ts REAL NOT NULL,
    PRIMARY KEY (follower, followee)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS follows_followee ON follows(followee);
"""

_UPSERT = ("INSERT INTO follows (follower, followee, weight, created_ts) VALUES (?, ?, ?, ?) "
           "ON CONFLICT(follower, followee) DO UPDATE SET weight = excluded.weight")


class SocialGraph:
    """The follow edges of one store."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        with store.connection() as db:
            db.executescript(_SCHEMA)
        self._writes = 0  # tie writes through this graph (other connections': store.data_version)
        self._ties: dict[tuple[str, int], tuple[tuple[int, int], tuple[tuple[str, float, float], ...]]] = {}

    def follow(self, follower: str, followee: str, weight: float = 1.0) -> bool:
        """Add or re-weight a tie; True when it is new."""
        with self._writing() as db:
            new = db.execute("SELECT 1 FROM follows WHERE follower = ? AND followee = ?", (follower, followee)).fetchone() is None
            db.execute(_UPSERT, (follower, followee, weight, time.time()))
        return new

    def follow_many(self, edges: Iterable[tuple[str, str, float]]) -> int:
        """Bulk import (one transaction); returns how many edges were new."""
        now = time.time()
        rows = [(a, b, w, now) for a, b, w in edges]
        with self._writing() as db:
            before = db.execute("SELECT COUNT(*) FROM follows").fetchone()[0]
            db.executemany(_UPSERT, rows)
            after = db.execute("SELECT COUNT(*) FROM follows").fetchone()[0]
        return int(after - before)

    def unfollow(self, follower: str, followee: str) -> bool:
        """Remove a tie; True when there was one."""
        with self._writing() as db:
            return db.execute("DELETE FROM follows WHERE follower = ? AND followee = ?", (follower, followee)).rowcount > 0

    def follows(self, user: str, limit: int = MAX_TIES, offset: int = 0) -> list[tuple[str, float, float]]:
        """(followee, weight, since) of the users `user` follows, strongest then newest first."""
        return self._list("SELECT followee, weight, created_ts FROM follows WHERE follower = ? "
                          "ORDER BY weight DESC, created_ts DESC, followee LIMIT ? OFFSET ?", user, limit, offset)

    def ties(self, user: str, limit: int = MAX_TIES) -> tuple[tuple[str, float, float], ...]:
        """`follows(user, limit)`, kept between calls while no tie changed: every recommendation
        asks for its user's ties, a SQLite read (~20 us) even in a shop without any. An entry is
        kept with the (own writes, data_version) it was read at and used only while both are
        unchanged: a write through this graph or any commit by another connection to the file
        (another worker's follow) makes every entry be read again."""
        at = (self._writes, self.store.data_version())
        key = (user, limit)
        kept = self._ties.get(key)
        if kept is not None and kept[0] == at:
            return kept[1]
        ties = tuple(self.follows(user, limit))
        if len(self._ties) >= CACHED_USERS:
            self._ties.clear()
        self._ties[key] = (at, ties)
        return ties

    def followers(self, user: str, limit: int = MAX_TIES, offset: int = 0) -> list[tuple[str, float, float]]:
        """(follower, weight, since) of the users who follow `user`."""
        return self._list("SELECT follower, weight, created_ts FROM follows WHERE followee = ? "
                          "ORDER BY weight DESC, created_ts DESC, follower LIMIT ? OFFSET ?", user, limit, offset)

    def counts(self, user: str) -> tuple[int, int]:
        """(how many `user` follows, how many follow `user`)."""
        with self.store.connection() as db:
            return (db.execute("SELECT COUNT(*) FROM follows WHERE follower = ?", (user,)).fetchone()[0],
                    db.execute("SELECT COUNT(*) FROM follows WHERE followee = ?", (user,)).fetchone()[0])

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on the ties: kept `ties` are read again after it, whatever its end."""
        try:
            with self.store.transaction() as db:
                yield db
        finally:
            self._writes += 1

    def _list(self, sql: str, user: str, limit: int, offset: int) -> list[tuple[str, float, float]]:
        with self.store.connection() as db:
            return [(other, float(w), float(ts)) for other, w, ts in db.execute(sql, (user, limit, offset))]

    def forget(self, user: str) -> int:
        """Delete every tie from or to `user` (a deleted user); returns how many."""
        with self._writing() as db:
            return db.execute("DELETE FROM follows WHERE follower = ? OR followee = ?", (user, user)).rowcount
