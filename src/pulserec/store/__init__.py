"""Durable storage of events, items and users (SQLite in WAL mode by default)."""

from pulserec.store.sqlite import EVENT_COLUMNS, SQLiteStore

__all__ = ["EVENT_COLUMNS", "SQLiteStore"]
