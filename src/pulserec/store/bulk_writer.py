"""Bulk writes in a separate process, so storing chunk k+1 overlaps applying chunk k.

In one process the SQLite writer holds the GIL while it binds parameters, so a writer thread
overlaps the online-state work only partly. A forked writer process owns its own connection to
the same WAL database and runs truly in parallel; the parent only waits for each chunk's
`seq` of each row (None: a duplicate) before applying that chunk."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from pulserec.store.sqlite import SQLiteStore, frame_rows

_CHILD_STORE: SQLiteStore | None = None


def _append_in_child(path: str, synchronous: str, frame: pd.DataFrame) -> list[int | None]:
    """In the writer process: the frame arrives pickled column by column (cheap), and the
    row tuples SQLite binds are built here, off the parent's critical path."""
    global _CHILD_STORE
    if _CHILD_STORE is None or str(_CHILD_STORE.path) != path:
        _CHILD_STORE = SQLiteStore(path, synchronous, indexes=False)
    return _CHILD_STORE.append_events(frame_rows(frame))


class BulkWriter:
    """Submits frames to the store in the background; `submit(frame)` returns a future of each
    row's `seq` (None for a duplicate). Uses a forked process when available, else a thread."""

    def __init__(self, store: SQLiteStore, synchronous: str, use_process: bool = True) -> None:
        self.store = store
        self.path = str(Path(store.path))
        self.synchronous = synchronous
        self._executor: Executor
        if use_process and "fork" in multiprocessing.get_all_start_methods():
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
            self.in_process = True
        else:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pulserec-store")
            self.in_process = False

    def submit(self, frame: pd.DataFrame) -> Future:
        if self.in_process:
            return self._executor.submit(_append_in_child, self.path, self.synchronous, frame)
        return self._executor.submit(lambda: self.store.append_events(frame_rows(frame)))

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> BulkWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
