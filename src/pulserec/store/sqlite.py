"""The embedded store: one SQLite file in WAL mode, no server.

Events are an append-only log keyed by a monotonically increasing `seq`; `event_id` is unique,
so a redelivered event is stored (and applied) once. Every write is one transaction: a crash
mid-write leaves either all of a batch or none of it.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pulserec.events import SESSION_PREFIX
from pulserec.records import ItemRecord
from pulserec.store.failures import StorageError, storage_error
from pulserec.store.watermark import RAISE_MARK, Sidecar, check_on_open, sidecar_path

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "type",
    "ts",
    "value",
    "session_id",
    "query",
    "context",
    "rec_id",
    "dwell_seconds",
)

#: The events table's own secondary indexes (separate: a bulk load may defer them, store/bulk_load.py).
EVENT_INDEXES = """
CREATE INDEX IF NOT EXISTS events_user ON events(user_id);
CREATE INDEX IF NOT EXISTS events_session ON events(session_id) WHERE session_id IS NOT NULL;
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,  -- arrival order; user_id is NULL for anonymous sessions
    event_id   TEXT    NOT NULL UNIQUE,
    user_id    TEXT,
    item_id    TEXT,
    type       TEXT    NOT NULL,
    ts         REAL    NOT NULL,
    value      REAL,
    session_id TEXT,
    query      TEXT,
    context    TEXT,
    rec_id     TEXT,
    dwell_seconds REAL              -- seconds the item's page was visible (issue 14.2)
);
CREATE TABLE IF NOT EXISTS items (
    item_id     TEXT PRIMARY KEY,
    title       TEXT,
    description TEXT,
    category    TEXT,
    tags        TEXT,
    price       REAL,
    active      INTEGER NOT NULL DEFAULT 1,
    created_ts  REAL,
    attrs       TEXT
);
CREATE TABLE IF NOT EXISTS users (
    user_id    TEXT PRIMARY KEY,
    attrs      TEXT,
    created_ts REAL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);
"""

#: Columns added to `events` after its first release: a store created before gets them on open
#: (NULL in old rows, which is what an event without them means).
_ADDED_COLUMNS = {"dwell_seconds": "REAL"}


def _add_missing_columns(db: sqlite3.Connection) -> None:
    have = {row[1] for row in db.execute("PRAGMA table_info(events)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in have:
            db.execute(f"ALTER TABLE events ADD COLUMN {name} {kind}")


#: `meta` keys counting changes that other processes must notice (see SQLiteStore.head).
CATALOG_VERSION = "catalog_version"
DELETION_VERSION = "deletion_version"


def _bump_version(db: sqlite3.Connection, key: str) -> None:
    """Count one more change of kind `key` (call inside the change's transaction)."""
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?, '1') "
        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
        (key,),
    )


_INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))}) "
    "ON CONFLICT(event_id) DO NOTHING"
)


#: The events table's REAL columns: a missing value binds as NaN, which SQLite stores as NULL.
_REAL_COLUMNS = frozenset({"ts", "value", "dwell_seconds"})
#: Columns an event must have: a bulk insert leaves out any other that is NULL in every row.
_REQUIRED = frozenset({"event_id", "type", "ts"})


def _bound(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, str] | None:
    """One column of a bulk insert: its values (a float64 or object array, column-wise: much
    faster than itertuples) and the placeholder that binds them; None when the column is not
    bound (missing from the frame, or NULL in every row of an optional column).

    Python's sqlite3 binds None ~1 us slower than a str or float (None is not a base type, so
    each one goes through the adapter lookup), and a shop's rows leave a value or a query NULL
    in most rows: a REAL column's missing values bind as NaN (SQLite stores NULL), a text
    column's as '' turned back into NULL by NULLIF in SQL. The same rows are stored; a text
    column that holds '' itself keeps None for its missing values (rare: ids are stripped)."""
    if name not in frame:  # a frame from before the column (`_ADDED_COLUMNS`), or a NULL column left out
        return None
    optional = name not in _REQUIRED
    if name in _REAL_COLUMNS:
        reals = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        return None if optional and np.isnan(reals).all() else (reals, "?")
    texts = frame[name].to_numpy(dtype=object)
    missing = pd.isna(texts)
    if optional and missing.all():
        return None
    if not missing.any():
        return texts, "?"
    texts = texts.copy()
    if "" in texts[~missing].tolist():
        texts[missing] = None
        return texts, "?"
    texts[missing] = ""
    return texts, "NULLIF(?, '')"


#: Events per INSERT statement of a bulk insert (a multi-row VALUES list): sqlite3's executemany
#: pays a statement reset, a step and a Python row tuple per execution; 256 rows per statement
#: store the synthetic shop's rows in 3.4-4.1 instead of 5.1-5.8 us/row (210k rows, the writer's
#: whole append, load 4-8). Fewer where SQLite allows fewer bound values per statement.
ROWS_PER_INSERT = 256


@functools.lru_cache(maxsize=64)
def _insert_sql(columns: tuple[str, ...], placeholders: tuple[str, ...], rows: int) -> str:
    values = f"({', '.join(placeholders)})"
    return (f"INSERT INTO events ({', '.join(columns)}) VALUES {', '.join([values] * rows)} "
            "ON CONFLICT(event_id) DO NOTHING")


def _bulk_insert(db: sqlite3.Connection, frame: pd.DataFrame) -> int:
    """Insert a frame's rows in order, `ROWS_PER_INSERT` to a statement; returns how many were
    stored (the others were duplicates). One grid of Python values, cut into statements' rows
    by a reshape: no per-row tuple is built."""
    bound = {name: column for name in EVENT_COLUMNS if (column := _bound(frame, name)) is not None}
    columns, placeholders = tuple(bound), tuple(placeholder for _, placeholder in bound.values())
    grid = np.empty((len(frame), len(bound)), dtype=object)
    for j, (values, _) in enumerate(bound.values()):
        grid[:, j] = values
    per = max(1, min(ROWS_PER_INSERT, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(bound)))
    whole = len(frame) - len(frame) % per
    stored = 0  # rowcount: the rows each statement inserted (total_changes also counts the triggers')
    if whole:
        stored += db.executemany(_insert_sql(columns, placeholders, per), grid[:whole].reshape(-1, per * len(bound)).tolist()).rowcount
    if whole < len(frame):
        stored += db.executemany(_insert_sql(columns, placeholders, 1), grid[whole:].tolist()).rowcount
    return stored


def _inserted_after(db: sqlite3.Connection, before: int) -> dict[str, int]:
    """event_id -> seq of the rows stored after `before`."""
    return {eid: seq for seq, eid in db.execute("SELECT seq, event_id FROM events WHERE seq > ?", (before,))}


#: How long a statement waits for another connection's lock before failing (sqlite3's `timeout`).
BUSY_TIMEOUT_MS = 30_000


class SQLiteStore:
    """Thread-safe access to the SQLite file (one connection, serialised by a lock).

    Opening raises :class:`~pulserec.store.watermark.StoreWentBackwards` when the database holds
    fewer events than were committed before (lost WAL, 0-byte file), unless `accept_data_loss`."""

    def __init__(self, path: str | Path, synchronous: str = "NORMAL", accept_data_loss: bool = False,
                 indexes: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        #: The storage failure of the last write, until one succeeds (see `transaction`).
        self.failure: StorageError | None = None
        self._closed = False
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        # Deleted rows are overwritten with zeros, not left readable in free pages (right to be
        # forgotten); `checkpoint` then clears the old page images out of the WAL.
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache: bulk inserts touch many index pages
        self._db.executescript(_SCHEMA)
        if indexes:  # False for a bulk writer's second connection (the first made them, or deferred them)
            self._db.executescript(EVENT_INDEXES)
        _add_missing_columns(self._db)
        self._sidecar: Sidecar | None = Sidecar(sidecar_path(self.path))
        try:
            self._mark = check_on_open(self._db, self.path, self._sidecar, accept_data_loss)
        except BaseException:
            self._sidecar.close()
            self._db.close()
            raise

    def close(self) -> None:
        """Checkpoint the WAL into the database file and close: after a clean stop pulserec.db
        alone holds every committed write (a backup of it is complete). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._sidecar is not None:  # a writer, not a snapshot view
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:  # another process holds a read lock; SQLite checkpoints later
                    log.warning("could not checkpoint %s on close: %s", self.path, exc)
                self._sidecar.close()
            self._db.close()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The connection, held under the store's lock, for statements that are each their own
        transaction (tables of other modules, such as store/feedback.py's, share the file)."""
        with self._lock:
            yield self._db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT), rolled back on any error.

        A storage failure (full disk, read-only file, I/O error) is raised as a
        :class:`StorageError` naming its cause and kept in `failure` until a write succeeds.
        SQLite has already rolled back after some of them (SQLITE_FULL): a ROLLBACK then fails
        with "cannot rollback - no transaction is active", which used to hide the real error."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                failure = storage_error(exc)
                if failure is None:
                    raise
                self.failure = failure
                raise failure from exc
            self.failure = None

    def probe(self) -> StorageError | None:
        """A small real write, to learn whether a past storage failure is over (readiness).

        It needs new pages (an 8 KiB value, removed in the same transaction): a write that fits
        in a page already there could succeed on a disk that still has no room for events."""
        try:
            with self.transaction() as db:
                db.execute("INSERT INTO meta (key, value) VALUES ('probe', zeroblob(8192)) "
                           "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
                db.execute("DELETE FROM meta WHERE key = 'probe'")
        except StorageError as exc:
            return exc
        return None

    # -- events -----------------------------------------------------------------------------
    def append_events(self, rows: Sequence[tuple[Any, ...]]) -> list[int | None]:
        """Store events (tuples in EVENT_COLUMNS order) in one transaction.

        Returns, per row, the new `seq`, or None where the event_id was already stored
        (earlier, or earlier in this same batch)."""
        if not rows:
            return []
        with self.transaction() as db:
            before = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            db.executemany(_INSERT_EVENT, rows)
            inserted = _inserted_after(db, before)
            self._raise_mark(db, max(inserted.values(), default=0))
        self._mark_sidecar(bool(inserted))
        return [inserted.pop(row[0], None) for row in rows]

    def append_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """The bulk version of :meth:`append_events`, for a frame with EVENT_COLUMNS (the
        optional ones may be missing): the `seq` of each row, -1 where it was a duplicate.

        Columns NULL in every row are not bound, and when nothing was a duplicate the seqs are
        known without reading them back: one transaction's new rows get MAX(seq) + 1, + 2, ..."""
        if frame.empty:
            return np.empty(0, dtype=np.int64)
        with self.transaction() as db:
            before = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
            stored = _bulk_insert(db, frame)
            inserted = None if stored == len(frame) else _inserted_after(db, before)
            self._raise_mark(db, before + stored if stored else 0)
        self._mark_sidecar(stored > 0)
        if inserted is None:
            return np.arange(before + 1, before + 1 + stored, dtype=np.int64)
        return np.fromiter((inserted.pop(e, -1) for e in frame["event_id"].tolist()), dtype=np.int64, count=len(frame))

    def _raise_mark(self, db: sqlite3.Connection, top: int) -> None:
        """In the write's transaction: record its highest `seq` (0: it stored nothing) in `meta`."""
        if top:
            self._mark = max(self._mark, top)
            db.execute(RAISE_MARK, (self._mark,))

    def _mark_sidecar(self, stored: bool) -> None:
        """After the commit: the highest committed `seq` in the sidecar too (store/watermark.py)."""
        if stored and self._sidecar is not None:
            self._sidecar.write(self._mark)

    def event_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def data_version(self) -> int:
        """SQLite's `PRAGMA data_version`: it changes when another connection (another process, a
        bulk writer) commits to the file, never for this connection's own commits. A copy kept
        in memory (store/social.py's ties) is current while it and the copy's own writes are."""
        with self._lock:
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def max_seq(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])

    def head(self) -> tuple[int, int, int]:
        """(last `seq`, catalogue version, deletion version), read as one consistent snapshot.

        The versions count item upserts and user deletions: a process that keeps a copy of the
        state compares them to notice changes made by other processes."""
        with self._lock:
            row = self._db.execute(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM events), "
                f"(SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) FROM meta WHERE key = '{CATALOG_VERSION}'), "
                f"(SELECT COALESCE(MAX(CAST(value AS INTEGER)), 0) FROM meta WHERE key = '{DELETION_VERSION}')"
            ).fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def event_rows_after(self, seq: int, limit: int) -> list[tuple[Any, ...]]:
        """Up to `limit` stored events after `seq`, as (seq, *EVENT_COLUMNS) tuples in `seq` order."""
        with self._lock:
            return self._db.execute(
                f"SELECT seq, {', '.join(EVENT_COLUMNS)} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()

    def iter_events(self, after_seq: int = 0, chunk: int = 250_000, upto_seq: int | None = None) -> Iterator[pd.DataFrame]:
        """The event log in `seq` order (after `after_seq`, up to `upto_seq` inclusive), as frames
        of at most `chunk` rows."""
        cursor = after_seq
        last = (1 << 62) if upto_seq is None else upto_seq
        while True:
            with self._lock:
                frame = pd.read_sql_query(
                    f"SELECT seq, {', '.join(EVENT_COLUMNS)} FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
                    self._db,
                    params=(cursor, last, chunk),
                )
            if frame.empty:
                return
            cursor = int(frame["seq"].iloc[-1])
            yield frame
            if len(frame) < chunk:
                return

    def snapshot(self) -> SQLiteStore:
        """A read-only view of the store as it is now, for long reads (rebuilding the online state):
        its own connection holding one read transaction, so events stored and users deleted
        afterwards are invisible to it. WAL readers never block writers (a checkpoint cannot
        pass the view until it closes). Call `close()` on it."""
        view = SQLiteStore.__new__(SQLiteStore)
        view.path, view._lock = self.path, threading.RLock()
        view.failure, view._closed, view._sidecar = None, False, None  # read-only: no mark to keep
        view._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                                   isolation_level=None, timeout=30.0)
        view._db.execute("BEGIN")
        view.max_seq()  # the first read takes the snapshot
        return view

    def owners_in_log(self, keys: Sequence[str]) -> set[str]:
        """Which of these owner keys (user keys; SESSION_PREFIX + a session id for an anonymous
        session) own events in the log: the truth a model's users are checked against."""
        users = [k for k in keys if not k.startswith(SESSION_PREFIX)]
        sessions = [k[len(SESSION_PREFIX):] for k in keys if k.startswith(SESSION_PREFIX)]
        found: set[str] = set()
        with self._lock:
            for column, wanted, prefix in (("user_id", users, ""), ("session_id", sessions, SESSION_PREFIX)):
                anonymous = " AND user_id IS NULL" if column == "session_id" else ""
                for start in range(0, len(wanted), 500):  # SQLite's bound-variable limit
                    chunk = wanted[start:start + 500]
                    rows = self._db.execute(f"SELECT DISTINCT {column} FROM events WHERE {column} IN "
                                            f"({','.join('?' * len(chunk))}){anonymous}", chunk).fetchall()
                    found.update(prefix + row[0] for row in rows)
        return found

    def user_events(self, user_id: str) -> pd.DataFrame:
        with self._lock:
            return pd.read_sql_query(
                f"SELECT seq, {', '.join(EVENT_COLUMNS)} FROM events WHERE user_id = ? ORDER BY seq",
                self._db,
                params=(user_id,),
            )

    def has_anonymous_events(self, session_id: str) -> bool:
        """Whether the session has events no user has claimed yet (a read, on an index)."""
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM events WHERE session_id = ? AND user_id IS NULL LIMIT 1", (session_id,)
            ).fetchone() is not None

    def claim_session(self, session_id: str, user_id: str) -> pd.DataFrame:
        """Give a session's anonymous events to `user_id` (login); returns the claimed events."""
        with self.transaction() as db:
            claimed = pd.read_sql_query(
                f"SELECT seq, {', '.join(EVENT_COLUMNS)} FROM events WHERE session_id = ? AND user_id IS NULL ORDER BY seq",
                db,
                params=(session_id,),
            )
            db.execute("UPDATE events SET user_id = ? WHERE session_id = ? AND user_id IS NULL", (user_id, session_id))
            if not claimed.empty:  # events changed owner: replicas in other processes must rebuild
                _bump_version(db, DELETION_VERSION)
        return claimed

    def delete_user(self, user_id: str) -> pd.DataFrame:
        """Remove a user's events and record in one transaction; returns the removed events."""
        with self.transaction() as db:
            removed = pd.read_sql_query(
                f"SELECT seq, {', '.join(EVENT_COLUMNS)} FROM events WHERE user_id = ? ORDER BY seq",
                db,
                params=(user_id,),
            )
            db.execute("DELETE FROM events WHERE user_id = ?", (user_id,))
            db.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
            _bump_version(db, DELETION_VERSION)
        return removed

    def checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate it to zero bytes. After a deletion
        the WAL still holds the pages as they were before it; this removes them. False when a
        reader (another process, a rebuild's snapshot) kept part of the WAL alive: SQLite then
        checkpoints the rest later, and the next deletion tries again. Never waits for readers
        (a TRUNCATE checkpoint would, for the whole busy timeout)."""
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=0")
            try:
                busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                self._db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return not busy

    # -- items ------------------------------------------------------------------------------
    def upsert_items(self, records: Sequence[ItemRecord]) -> None:
        rows = [
            (
                r.item_id,
                r.title,
                r.description,
                r.category,
                json.dumps(list(r.tags)),
                r.price,
                int(r.active),
                r.created_ts,
                json.dumps(r.attrs) if r.attrs else None,
            )
            for r in records
        ]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO items (item_id, title, description, category, tags, price, active, created_ts, attrs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(item_id) DO UPDATE SET "
                "title=excluded.title, description=excluded.description, category=excluded.category, "
                "tags=excluded.tags, price=excluded.price, active=excluded.active, "
                "created_ts=COALESCE(items.created_ts, excluded.created_ts), attrs=excluded.attrs",
                rows,
            )
            _bump_version(db, CATALOG_VERSION)

    def load_items(self) -> list[ItemRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT item_id, title, description, category, tags, price, active, created_ts, attrs FROM items"
            ).fetchall()
        return [
            ItemRecord(
                item_id=r[0],
                title=r[1],
                description=r[2],
                category=r[3],
                tags=tuple(json.loads(r[4] or "[]")),
                price=r[5],
                active=bool(r[6]),
                created_ts=r[7],
                attrs=json.loads(r[8]) if r[8] else {},
            )
            for r in rows
        ]

    # -- users ------------------------------------------------------------------------------
    def upsert_users(self, users: Sequence[tuple[str, dict[str, Any], float | None]]) -> None:
        rows = [(uid, json.dumps(attrs) if attrs else None, created) for uid, attrs, created in users]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO users (user_id, attrs, created_ts) VALUES (?, ?, ?) ON CONFLICT(user_id) DO UPDATE "
                "SET attrs=excluded.attrs, created_ts=COALESCE(users.created_ts, excluded.created_ts)",
                rows,
            )

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT attrs, created_ts FROM users WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            return None
        return {"attrs": json.loads(row[0]) if row[0] else {}, "created_ts": row[1]}

    def user_attrs(self) -> dict[str, dict[str, Any]]:
        """User id -> declared attributes, for every user who declared any (the ranker's training)."""
        with self.connection() as db:
            rows = db.execute("SELECT user_id, attrs FROM users WHERE attrs IS NOT NULL").fetchall()
        return {uid: attrs for uid, text in rows if isinstance(attrs := json.loads(text), dict) and attrs}

    def user_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM users").fetchone()[0])

    # -- meta -------------------------------------------------------------------------------
    def ensure_meta(self, key: str, default: str) -> str:
        """The value of `key`, first setting it to `default` if absent (safe across processes)."""
        with self._lock:
            self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING", (key, default))
            return str(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])
