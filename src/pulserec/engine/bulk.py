"""The bulk write path (imports, replays): frames written to SQLite by a writer process while
earlier chunks are applied to the online state."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pulserec.engine.heap import settle_after_build
from pulserec.store.bulk_writer import BulkWriter

if TYPE_CHECKING:
    from pulserec.engine.core import Engine

#: Events per chunk: large enough that SQLite's per-transaction cost is amortised, small enough
#: that the writer and the state apply overlap for most of an import.
CHUNK = 35_000
#: Events the writer is given beyond the oldest chunk before the state applies that chunk (~10
#: MB of frames per 35k events of the synthetic shop). The state applies a chunk only once this
#: many later events are queued, not as soon as its write is done, so the writer finishes the
#: file that far ahead of the state, and its index builds after the last chunk (~3 s for 1M
#: events) overlap those events' applies and the snapshot instead of following them: on the 1M
#: shop the state's side (validation + apply, ~8 us/event) is the slower one, and ~400k events
#: of it (~3 s) is what covers the builds. A bound in events, not chunks, so memory does not
#: grow with the chunk size.
AHEAD_EVENTS = 420_000
#: A bulk ingest of at least this many events hands its freed temporaries back (engine/heap.py).
TRIM_AFTER_EVENTS = 100_000


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

    def ingest(self, frames: Iterable[pd.DataFrame], chunk: int = CHUNK, use_process: bool | None = None,
               finish: Sequence[str] = (), snapshot: bool = False) -> tuple[int, int]:
        """Pipelined: while later chunks are written to SQLite by a writer process, earlier ones
        are applied to the online state. Order is preserved; each chunk is applied only once its
        write committed, and every chunk that was written is applied, also when reading the
        frames or writing a later chunk fails. `finish`: statements the writer runs after the
        last chunk (a bulk load's index builds), while the last chunks are applied.

        `snapshot`: once every chunk is applied (the state then reflects a gapless prefix of the
        log), write the state's snapshot while the writer still runs `finish`: `pulserec import`
        of the 1M-event shop spent ~2 s writing it on close after ~3 s of index builds, one
        after the other on two cores. It is not fsynced (`snapshot_file.write_members`): the
        command does not wait for the disk for a file only the next start's speed depends on.

        The writer is a forked process only when forking is safe (no other thread alive, not
        even a stream client's: no lock can be inherited held), else a thread."""
        with self.engine.lock:
            self.depth += 1
        running = [True]

        def applied_all() -> None:
            with self.engine.lock:
                self.depth -= 1
            running[0] = False
            if snapshot:
                self.engine.checkpoints.write_if_behind(durable=False)

        try:
            accepted, duplicates = self._ingest(frames, chunk, use_process, finish, applied_all)
        finally:
            if running[0]:
                with self.engine.lock:
                    self.depth -= 1
        if accepted >= TRIM_AFTER_EVENTS:
            settle_after_build()  # the import's objects out of the GC's full passes, its temporaries freed (engine/heap.py)
        return accepted, duplicates

    def _ingest(self, frames: Iterable[pd.DataFrame], chunk: int, use_process: bool | None,
                finish: Sequence[str], applied_all: Callable[[], None]) -> tuple[int, int]:
        engine = self.engine
        if use_process is None:
            # A stream client (librdkafka) runs native threads that threading cannot see.
            use_process = engine.applies_locally and engine.publisher is None and threading.active_count() == 1
        counts = [0, 0]  # accepted, duplicates
        pending: deque[tuple[pd.DataFrame, Future]] = deque()
        with BulkWriter(engine.store, engine.settings.sqlite_synchronous, use_process) as writer:
            try:
                first = True
                queued = 0  # events in `pending`
                for frame in frames:
                    for start, end in chunk_bounds(len(frame), chunk, first=first):
                        first = False
                        part = self._keyed(frame.iloc[start:end])
                        pending.append((part, writer.submit(part)))
                        queued += len(part)
                        while queued - len(pending[0][0]) >= AHEAD_EVENTS:
                            queued -= len(pending[0][0])
                            self._apply_chunk(*pending.popleft(), counts)
                built = writer.execute(finish) if finish else None
                while pending:
                    self._apply_chunk(*pending.popleft(), counts)
                with engine.lock:
                    engine.state.end_bulk()
                applied_all()
                if built is not None:
                    built.result()
            finally:
                self._apply_written(pending, counts)
        return counts[0], counts[1]

    def _keyed(self, part: pd.DataFrame) -> pd.DataFrame:
        """The chunk with pseudonymised user and session ids, when the engine stores pseudonyms."""
        engine = self.engine
        if not engine.pseudonym:
            return part
        return part.assign(user_id=part["user_id"].map(lambda u: engine.user_key(u) if isinstance(u, str) else u),
                           session_id=part["session_id"].map(lambda s: engine.session_key(s) if isinstance(s, str) else s))

    def _apply_written(self, pending: deque[tuple[pd.DataFrame, Future]], counts: list[int]) -> None:
        """After a failure: apply the chunks queued before it that the writer did store (it
        writes in order and none after a failed one), so the state holds all that the log does."""
        while pending:
            part, stored = pending.popleft()
            if stored.exception() is not None:  # waits for the write; a failed one stops the rest
                return
            self._apply_chunk(part, stored, counts)

    def _apply_chunk(self, part: pd.DataFrame, stored: Future, counts: list[int]) -> None:
        engine = self.engine
        seqs = stored.result()
        new = seqs >= 0
        # With their seq, so the state knows its log watermark (snapshots, tail replays).
        fresh = part[new].assign(seq=seqs[new])
        with engine.lock:
            engine.apply_stored_frame(fresh)
        duplicates = len(part) - len(fresh)
        engine.counters["events.accepted"] += len(fresh)
        engine.counters["events.duplicate"] += duplicates
        latest = float(fresh["ts"].max()) if len(fresh) else None
        engine.notify(fresh["type"].value_counts().to_dict(), duplicates, latest)
        counts[0] += len(fresh)
        counts[1] += duplicates
