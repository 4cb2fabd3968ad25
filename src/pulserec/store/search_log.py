"""What people clicked after searching (issue 14.3), read from the event log itself.

Every stored event with a query is indexed in an FTS5 table over `events.query` (external
content: the log holds the text, triggers keep the index in step on insert and delete). For a
query, :meth:`SearchLog.clicks_after` finds the most similar past searches (those holding all its
words, ranked by FTS5's BM25) and
sums, per item, what their owner did in the same session right after: the first
`per_search` item events (default 1) of the given types within `gap` seconds, each counted with
its search's similarity.

Read from the log rather than kept in the online state, so it is learned online (an event
counts once it is stored), shared by every process of one data dir and by either state backend,
and exact after a deletion (a deleted user's rows, and so their searches and clicks, are gone)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

from pulserec.store.sqlite import CATALOG_VERSION, SQLiteStore

#: Words of a query: what the FTS index is asked for (quoted, so nothing is FTS syntax).
WORD = re.compile(r"\w+", re.UNICODE)
#: At most this many words of a query are matched (a pasted paragraph is not a query).
MAX_WORDS = 16
#: Searches an item needs before its learned weight counts half: one person's odd click after a
#: search (on the synthetic shop: a seed kit after "shoe") stays below a plain word match.
PRIOR_SEARCHES = 2.0

_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS search_terms USING fts5(query, content='events', content_rowid='seq',
                                                          tokenize='porter unicode61');
CREATE TRIGGER IF NOT EXISTS search_terms_add AFTER INSERT ON events WHEN new.query IS NOT NULL BEGIN
    INSERT INTO search_terms(rowid, query) VALUES (new.seq, new.query);
END;
CREATE TRIGGER IF NOT EXISTS search_terms_drop AFTER DELETE ON events WHEN old.query IS NOT NULL BEGIN
    INSERT INTO search_terms(search_terms, rowid, query) VALUES ('delete', old.seq, old.query);
END;
"""

#: The trigger that indexes each inserted event's query. A bulk load drops it and indexes the
#: loaded rows' queries once after the load (store/bulk_load.py): row by row, FTS5 inserts cost
#: ~3.5 us per stored event of the synthetic shop (a third of the bulk writer's time).
ADD_TRIGGER = "search_terms_add"


def index_after(seq: int) -> str:
    """The statement that indexes the queries of the rows stored after `seq`, as the trigger
    would have: only rows with a query. FTS5's 'rebuild' is not that: it adds a document for
    every row of the log, empty ones too (1.9 us per row of the 1M-event shop, 97% of them
    without a query), and BM25 counts them, so every search's similarity came out different
    after a bulk load than after the same events stored one by one."""
    return f"INSERT INTO search_terms(rowid, query) SELECT seq, query FROM events WHERE seq > {int(seq)} AND query IS NOT NULL"


#: Re-index every stored query from the log (external content: correct whatever the index held).
REINDEX = f"INSERT INTO search_terms(search_terms) VALUES ('delete-all'); {index_after(0)};"

# The searches most like the query, then for each the owner's next item events in the session.
# The owner is the user, else the anonymous session (as Event.owner); a session merged at login
# carries the user's id on all its rows, searches and clicks alike.
_CLICKS_AFTER = """
WITH searches AS (
    SELECT e.seq, e.ts, e.user_id, e.session_id, -bm25(search_terms) AS similarity
    FROM search_terms JOIN events e ON e.seq = search_terms.rowid
    WHERE search_terms MATCH ? ORDER BY bm25(search_terms) LIMIT ?
)
SELECT n.item_id, SUM(s.similarity), COUNT(*) FROM searches s JOIN events n ON n.seq IN (
    SELECT x.seq FROM events x
    WHERE x.seq > s.seq AND x.ts <= s.ts + ? AND x.item_id IS NOT NULL AND x.type IN ({types})
      AND (x.user_id = s.user_id OR (s.user_id IS NULL AND x.user_id IS NULL AND x.session_id = s.session_id))
    ORDER BY x.seq LIMIT ?)
GROUP BY n.item_id
"""


def match_expression(text: str) -> str | None:
    """An FTS5 query matching the searches that hold every word of `text` (each quoted; stemmed by
    the index's Porter tokenizer, so "shoe" finds "shoes"), or None without words. Every word,
    not any: "running shoe" is not like "running home"."""
    words = list(dict.fromkeys(w.lower() for w in WORD.findall(text)))[:MAX_WORDS]
    return " AND ".join(f'"{w}"' for w in words) if words else None


class SearchLog:
    """The search index of one store (created, and filled from the log, on first open)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        with store.connection() as db:
            have = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE name IN ('search_terms', ?)",
                                                   (ADD_TRIGGER,))}
            db.executescript(_SCHEMA)
            # A store from before the index, or one whose bulk load was killed before it rebuilt
            # the index (the trigger is dropped meanwhile): index the searches it already holds.
            if have != {"search_terms", ADD_TRIGGER}:
                db.executescript(f"BEGIN IMMEDIATE; {REINDEX} COMMIT;")

    def clicks_after(self, text: str, types: Sequence[str], gap: float, searches: int = 200,
                     per_search: int = 1) -> dict[str, float]:
        """Item id -> a score in [0, 1): the summed similarity of the searches like `text` that
        the item followed (relative to the best item's), times count / (count + PRIOR_SEARCHES)
        (few searches, little confidence).

        By default only the first item event after each search counts: it is what the search was
        for; later ones are the session moving on (on the synthetic shop, counting three let a
        popular mug follow "running shoes")."""
        match = match_expression(text)
        if match is None or not types:
            return {}
        sql = _CLICKS_AFTER.format(types=", ".join("?" * len(types)))
        with self.store.connection() as db:
            try:
                rows = db.execute(sql, (match, searches, gap, *types, per_search)).fetchall()
            except sqlite3.OperationalError:  # an FTS query SQLite cannot parse: no learned intent
                return {}
        top = max((weight for _, weight, _ in rows), default=0.0)
        if top <= 0:
            return {}
        return {item: weight / top * count / (count + PRIOR_SEARCHES) for item, weight, count in rows}

    def purge(self) -> None:
        """Rewrite the index without what deleted rows left in it: FTS5 keeps a deleted row's
        terms in old segments until they merge, and a deleted user's queries must go now
        (secure_delete zeroes the freed pages). Costs a pass over the index: deletions only."""
        with self.store.transaction() as db:
            db.execute("INSERT INTO search_terms(search_terms) VALUES ('optimize')")

    def catalog_version(self) -> int:
        """Changes of the catalogue so far (item upserts, by any process): a cached index of item
        texts is rebuilt when this moves."""
        with self.store.connection() as db:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (CATALOG_VERSION,)).fetchone()
        return int(row[0]) if row else 0
