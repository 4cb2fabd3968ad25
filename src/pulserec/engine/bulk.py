"""The bulk write path (imports, replays): frames written to SQLite by a writer process while
the previous chunk is applied to the online state."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pulserec.store.bulk_writer import BulkWriter

if TYPE_CHECKING:
    from pulserec.engine.core import Engine

#: Events per chunk: large enough that SQLite's per-transaction cost is amortised, small enough
#: that the writer and the state apply overlap for most of an import.
CHUNK = 35_000


def chunk_bounds(n: int, chunk: int, first: bool) -> list[tuple[int, int]]:
    """Chunk boundaries; a small first chunk gets the write/apply pipeline going sooner."""
    cuts = [0]
    if first and n > chunk:
        cuts.append(max(chunk // 8, 1))
    while cuts[-1] < n:
        cuts.append(min(cuts[-1] + chunk, n))
    return list(zip(cuts[:-1], cuts[1:]))


class BulkIngest:
    """`depth` counts the bulk ingests running: their applied prefix of the log may have gaps, so
    no snapshot is written meanwhile."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.depth = 0

    @property
    def running(self) -> bool:
        return self.depth > 0

    def ingest(self, frames: Iterable[pd.DataFrame], chunk: int = CHUNK, use_process: bool | None = None) -> tuple[int, int]:
        """Pipelined: while chunk k+1 is written to SQLite by a writer process, chunk k is applied
        to the online state. Order is preserved; each chunk is applied only once its write
        committed. The writer is a forked process only when forking is safe (no other thread
        alive, not even a stream client's: no lock can be inherited held), else a thread."""
        with self.engine.lock:
            self.depth += 1
        try:
            return self._ingest(frames, chunk, use_process)
        finally:
            with self.engine.lock:
                self.depth -= 1

    def _ingest(self, frames: Iterable[pd.DataFrame], chunk: int, use_process: bool | None) -> tuple[int, int]:
        engine = self.engine
        accepted = duplicates = 0
        if use_process is None:
            # A stream client (librdkafka) runs native threads that threading cannot see.
            use_process = engine.applies_locally and engine.publisher is None and threading.active_count() == 1
        with BulkWriter(engine.store, engine.settings.sqlite_synchronous, use_process) as writer:
            pending: tuple[pd.DataFrame, Future] | None = None
            for frame in frames:
                if engine.pseudonym:
                    frame = frame.assign(user_id=frame["user_id"].map(lambda u: engine.user_key(u) if isinstance(u, str) else u),
                                         session_id=frame["session_id"].map(
                                             lambda s: engine.session_key(s) if isinstance(s, str) else s))
                for start, end in chunk_bounds(len(frame), chunk, first=pending is None):
                    part = frame.iloc[start:end]
                    submitted = (part, writer.submit(part))
                    if pending is not None:
                        accepted, duplicates = self._apply_chunk(*pending, accepted, duplicates)
                    pending = submitted
            if pending is not None:
                accepted, duplicates = self._apply_chunk(*pending, accepted, duplicates)
        return accepted, duplicates

    def _apply_chunk(self, part: pd.DataFrame, stored: Future, accepted: int, duplicates: int) -> tuple[int, int]:
        engine = self.engine
        seqs = stored.result()
        new = np.fromiter((seq is not None for seq in seqs), dtype=bool, count=len(seqs))
        # With their seq, so the state knows its log watermark (snapshots, tail replays).
        fresh = part[new].assign(seq=np.fromiter((seq for seq in seqs if seq is not None), dtype=np.int64, count=int(new.sum())))
        with engine.lock:
            engine.apply_stored_frame(fresh)
        engine.counters["events.accepted"] += len(fresh)
        engine.counters["events.duplicate"] += len(part) - len(fresh)
        latest = float(fresh["ts"].max()) if len(fresh) else None
        engine.notify(fresh["type"].value_counts().to_dict(), len(part) - len(fresh), latest)
        return accepted + len(fresh), duplicates + len(part) - len(fresh)
