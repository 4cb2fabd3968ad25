"""Storage failures named by their cause: full disk, read-only file, I/O error, lock, corruption.

SQLite reports these as `sqlite3.OperationalError` with an error name; the API turns a
:class:`StorageError` into a JSON 507 (no space) or 503 (anything else it cannot do now),
and readiness (`GET /health/ready`) reports the last one until a write succeeds again."""

from __future__ import annotations

import sqlite3

#: (SQLite error-name prefix, kind, HTTP status, what it means). Extended names such as
#: SQLITE_IOERR_WRITE or SQLITE_READONLY_DBMOVED match by prefix.
_CAUSES = (
    ("SQLITE_FULL", "disk_full", 507, "the disk holding the database is full"),
    ("SQLITE_READONLY", "read_only", 503, "the database cannot be written (read-only file or directory)"),
    ("SQLITE_IOERR", "io_error", 503, "the disk reported an I/O error"),
    ("SQLITE_BUSY", "busy", 503, "the database is locked by another process"),
    ("SQLITE_LOCKED", "busy", 503, "the database is locked"),
    ("SQLITE_CANTOPEN", "cannot_open", 503, "the database file cannot be opened"),
    ("SQLITE_CORRUPT", "corrupt", 503, "the database file is corrupt"),
    ("SQLITE_NOTADB", "corrupt", 503, "the database file is not an SQLite database"),
)


class StorageError(RuntimeError):
    """The store could not do what was asked, for a reason outside the request (see `kind`)."""

    def __init__(self, kind: str, status: int, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status

    def __reduce__(self) -> tuple[type, tuple[str, int, str]]:  # crosses from the bulk writer process
        return (StorageError, (self.kind, self.status, str(self)))


def storage_error(exc: sqlite3.Error) -> StorageError | None:
    """The :class:`StorageError` an SQLite error stands for, or None (a bug, a constraint)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    for prefix, kind, status, meaning in _CAUSES:
        if name.startswith(prefix):
            return StorageError(kind, status, f"{meaning} ({name}: {exc})")
    return None
