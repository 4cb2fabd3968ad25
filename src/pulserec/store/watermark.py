"""The store's high-water mark, kept in two places so that a store that went backwards is noticed.

SQLite in WAL mode keeps recent commits only in `pulserec.db-wal` until a checkpoint: delete or
truncate that file (or restore an older `pulserec.db`, or find it 0 bytes) and the store opens
without complaint, with fewer events. So every write records the highest `seq` ever committed
twice: in the `meta` table (inside the write's transaction) and in a small sidecar file beside
the database (after the commit). On open, a sidecar ahead of the database means acknowledged
events are gone, and the store refuses to start unless told to accept the loss.

`seq` is compared, not the event count: deleting a user lowers the count (and may lower
MAX(seq)) legitimately, while the high-water mark in `meta` never decreases."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

#: `meta` key of the highest `seq` ever committed.
LAST_SEQ = "last_seq"
#: One fixed-width record, rewritten in place with one pwrite (no rename, no fsync: a few
#: microseconds per commit; the page cache outlives a crash of the process, which is what
#: this guards against along with files deleted or replaced by hand).
_RECORD = b"pulserec last_seq %020d\n"
_PATTERN = re.compile(rb"^pulserec last_seq (\d{20})\n$")

#: SQL that raises the mark to `?` inside the writing transaction (never lowers it).
RAISE_MARK = (
    f"INSERT INTO meta (key, value) VALUES ('{LAST_SEQ}', ?) "
    "ON CONFLICT(key) DO UPDATE SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))"
)


class StoreWentBackwards(RuntimeError):
    """The database holds fewer committed events than were acknowledged before."""


def sidecar_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".seq")


class Sidecar:
    """The high-water mark file beside the database; unwritable (read-only dir) = disabled."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            log.warning("cannot open %s (%s): a lost or truncated WAL will not be detected", path, exc)
            self._fd = None

    def read(self) -> int | None:
        """The recorded mark; None for a new, empty or unreadable sidecar."""
        if self._fd is None:
            return None
        match = _PATTERN.match(os.pread(self._fd, len(_RECORD % 0) + 1, 0))
        return int(match.group(1)) if match else None

    def write(self, seq: int) -> None:
        if self._fd is not None:
            try:
                os.pwrite(self._fd, _RECORD % seq, 0)
            except OSError as exc:  # a full disk must not fail a write SQLite already committed
                log.warning("cannot update %s: %s", self.path, exc)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def check_on_open(db: sqlite3.Connection, db_path: Path, sidecar: Sidecar, accept_loss: bool) -> int:
    """Compare the two marks; returns the store's mark. Raises :class:`StoreWentBackwards`
    when the sidecar recorded more than the database holds (unless `accept_loss`)."""
    row = db.execute(f"SELECT CAST(value AS INTEGER) FROM meta WHERE key = '{LAST_SEQ}'").fetchone()
    actual = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0])
    mark = max(int(row[0]) if row else 0, actual)  # a store written before the mark existed
    recorded = sidecar.read()
    if recorded is not None and recorded > mark:
        message = (f"{db_path} holds events up to seq {mark}, but {sidecar.path} records seq {recorded} as committed: "
                   f"the database or its -wal file was deleted, truncated or replaced by an older copy. Restore both "
                   f"files from a backup, or start with --accept-data-loss (setting accept_data_loss) to continue "
                   f"with what is left.")
        if not accept_loss:
            raise StoreWentBackwards(message)
        log.warning("accepting data loss: %s", message)
    if row is None or int(row[0]) != mark:
        db.execute(RAISE_MARK, (mark,))
    sidecar.write(mark)
    return mark
