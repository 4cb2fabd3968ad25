"""A bulk load that builds the events table's secondary indexes once, after it, instead of
inserting every row into each of them (issue 17.3).

Measured on this 2-core box (1M synthetic-shop rows, load ~9): inserting with the six indexes
the log has (event_id, user, session, and the dashboard's ts and item) ran at ~21k rows/s;
with only the event_id index (kept: it is what deduplicates) at ~45k rows/s, and building the
other four after took 8.7 s. Worth it when the load is at least as large as the log already
stored; a small import into a big log keeps the indexes (rebuilding them would cost more).

The definitions are read from `sqlite_master` and replayed, so whatever indexes other modules
add (store/history.py) come back as they were. If the process dies in between, the next open
recreates them (`SQLiteStore` its own, `History` the dashboard's): a crash costs speed, never
correctness.

A partial index over a column the loaded rows never hold (`WHERE session_id IS NOT NULL` when the
file has no session column) is kept: no loaded row enters it, and building it again would scan
the whole table (~0.14 s per 1M rows each for `events_session` and `events_rec`).

The search index's insert trigger (store/search_log.py) is dropped the same way and the loaded
rows' queries indexed once after the load, in the transaction that puts the trigger back: FTS5
inserts row by row cost ~3.5 us per stored event of the synthetic shop. A store left without
the trigger is re-indexed at its next open (`SearchLog`)."""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from pulserec.store.search_log import ADD_TRIGGER, index_after
from pulserec.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)

#: Below this many incoming rows indexes are kept (the saving is a few seconds at most).
MIN_ROWS = 200_000


#: A partial index whose rows all have one column set: kept when the loaded rows never set it.
_PARTIAL = re.compile(r"\bWHERE\s+(\w+)\s+IS\s+NOT\s+NULL\s*$", re.IGNORECASE)


@contextmanager
def indexes_deferred(store: SQLiteStore, incoming_rows: int, unset: Collection[str] = ()) -> Iterator[list[str]]:
    """Within: the events table without its secondary indexes, when `incoming_rows` is at least
    `MIN_ROWS` and the stored log's size; `unset`: columns NULL in every incoming row (a partial
    index over one of them is kept). Yields the statements that build them again (empty: they
    were kept): a bulk writer may run them itself after its last chunk, overlapping the build
    with the last state applies; on the way out whatever is still missing is built."""
    if incoming_rows < max(MIN_ROWS, store.event_count()):
        yield []
        return
    with store.transaction() as db:  # one transaction: no other writer's row falls between the max and the drop
        saved = {name: sql for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                                       "AND tbl_name = 'events' AND sql IS NOT NULL ORDER BY name")
                 if not ((partial := _PARTIAL.search(sql)) and partial.group(1) in unset)}
        trigger = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", (ADD_TRIGGER,)).fetchone()
        # Rows stored after this are not indexed by the trigger (the load's, and any other writer's)
        unindexed_after = db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        for name in saved:
            db.execute(f'DROP INDEX "{name}"')
        if trigger is not None:
            db.execute(f'DROP TRIGGER "{ADD_TRIGGER}"')
    statements = [re.sub(r"^CREATE (UNIQUE )?INDEX", r"CREATE \1INDEX IF NOT EXISTS", sql) for sql in saved.values()]
    if trigger is not None:
        statements.append(_reindexed(trigger[0], unindexed_after))
    try:
        yield statements
    finally:
        started = time.perf_counter()
        with store.connection() as db:
            have = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type IN ('index', 'trigger')")}
            for name, sql in saved.items():
                if name not in have:
                    db.execute(sql)
            if trigger is not None and ADD_TRIGGER not in have:
                run_script(db, _reindexed(trigger[0], unindexed_after))
        log.info("rebuilt %d events indexes after the bulk load in %.1fs", len(saved), time.perf_counter() - started)


def run_script(db: sqlite3.Connection, script: str) -> None:
    """`executescript`, rolled back when a statement fails inside its own BEGIN ... COMMIT (else
    the connection would stay in the half-done transaction, holding the write lock)."""
    try:
        db.executescript(script)
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _reindexed(trigger_sql: str, after: int) -> str:
    """One transaction: the queries of the rows stored after `after` indexed, and the insert
    trigger back. A process that opened the store meanwhile re-indexed it whole and put the
    trigger back already (see `SearchLog`): then nothing is to do."""
    trigger_sql = re.sub(r"^CREATE TRIGGER", "CREATE TRIGGER IF NOT EXISTS", trigger_sql)
    return f"BEGIN IMMEDIATE; {index_after(after)} AND NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '{ADD_TRIGGER}'); " \
           f"{trigger_sql}; COMMIT;"
