"""Bulk writes in a separate process, so storing chunk k+1 overlaps applying chunk k.

In one process the SQLite writer holds the GIL while it binds parameters, so a writer thread
overlaps the online-state work only partly. A forked writer process owns its own connection to
the same WAL database and runs truly in parallel; the parent only waits for each chunk's
`seq` of each row (-1: a duplicate) before applying that chunk.

Chunks are written strictly in order, and once one fails none after it is: the log never
holds a later chunk without an earlier one (a caller may have queued several ahead)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from pulserec.store.bulk_load import run_script
from pulserec.store.sqlite import SQLiteStore


class WriterStopped(RuntimeError):
    """A chunk queued after one that failed: it was not written."""


class _Sequential:
    """The writer's side: appends chunks in order and refuses every chunk after a failure."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.failed = False

    def append(self, frame: pd.DataFrame) -> np.ndarray:
        self._check()
        try:
            return self.store.append_frame(frame)
        except BaseException:
            self.failed = True
            raise

    def execute(self, statements: Sequence[str]) -> None:
        """Scripts run after the last chunk (a bulk load's index builds), each its own transaction
        unless it says BEGIN ... COMMIT itself; then the WAL is checkpointed into the database
        (PASSIVE: readers are not waited for), so the pages the builds wrote (~60 MB per 1M events)
        are copied and fsynced here, beside the state's last applies, and not by the importing
        process's close (`SQLiteStore.close`'s TRUNCATE then finds little left to copy)."""
        self._check()
        with self.store.connection() as db:
            (cache,) = db.execute("PRAGMA cache_size").fetchone()
            db.execute(f"PRAGMA cache_size=-{BUILD_CACHE_KIB}")
            try:
                for statement in statements:
                    run_script(db, statement)
            finally:
                db.execute(f"PRAGMA cache_size={int(cache)}")
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _check(self) -> None:
        if self.failed:
            raise WriterStopped("an earlier chunk of this bulk write failed; later ones are not written")


#: The writer process's side (one per forked child; each BulkWriter forks its own).
_CHILD: _Sequential | None = None
#: WAL pages (4 KiB) after which the writer process's commits checkpoint the WAL into the
#: database (SQLite's default is 1,000): each checkpoint fsyncs the WAL and the database, ~10 ms
#: each on this box, and a 1M-event import made ~47 of them; 64 MiB keeps the WAL bounded.
CHECKPOINT_PAGES = 16_384
#: Page cache (KiB) while the writer builds the deferred indexes: SQLite's sorter keeps up to
#: the cache's size in memory before it sorts and spills a run. Sorting runs of 4 MiB that fit
#: the CPU's caches and merging them cost less than one 64 MiB sort: the three big indexes of
#: the 1M shop 2.57-2.88 vs 2.95-3.32 s CPU, 6.7-11.0 vs 9.2-16.1 s wall (load 5-7, 3 rounds).
BUILD_CACHE_KIB = 4096
#: Linux's prctl option that signals a process when its parent dies.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In the writer process, first: a SIGKILL when the importing process dies, however it dies
    (kill -9 included). Otherwise an orphaned writer waits on its task pipe for ever, holding the
    database open; its parent's death also ends any chunk it is writing, which SQLite rolls back."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)


def _in_child(path: str, synchronous: str, method: str, argument: object) -> object:
    """In the writer process: the frame arrives pickled column by column (cheap); the values
    SQLite binds are built here, off the parent's critical path."""
    global _CHILD
    if _CHILD is None or str(_CHILD.store.path) != path:
        _CHILD = _Sequential(SQLiteStore(path, synchronous, indexes=False))
        with _CHILD.store.connection() as db:
            db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
    return getattr(_CHILD, method)(argument)


class BulkWriter:
    """Submits frames to the store in the background; `submit(frame)` returns a future of each
    row's `seq` (an int64 array, -1 for a duplicate). Uses a forked process when available,
    else a thread."""

    def __init__(self, store: SQLiteStore, synchronous: str, use_process: bool = True) -> None:
        self.path = str(Path(store.path))
        self.synchronous = synchronous
        self._executor: Executor
        self._local: _Sequential | None = None
        if use_process and "fork" in multiprocessing.get_all_start_methods():
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"),
                                                 initializer=_die_with_parent, initargs=(os.getpid(),))
        else:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulserec-store")
            self._local = _Sequential(store)

    @property
    def in_process(self) -> bool:
        return self._local is None

    def submit(self, frame: pd.DataFrame) -> Future:
        return self._call("append", frame)

    def execute(self, statements: Sequence[str]) -> Future:
        """Run `statements` in the writer after every chunk submitted so far."""
        return self._call("execute", list(statements))

    def _call(self, method: str, argument: object) -> Future:
        if self._local is not None:
            return self._executor.submit(getattr(self._local, method), argument)
        return self._executor.submit(_in_child, self.path, self.synchronous, method, argument)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
