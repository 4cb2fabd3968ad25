"""Helper threads beside the writers: one O(state) fold at a time, and a shorter GIL hand-over (issue 17.1).

The per-event write path of a large state used to stop for a structure's periodic fold: a
keyed profile table's merge of its delta into main (6.8M tags entries at 10M events: 1.3 s),
a co-occurrence compaction (18.5M pairs: 3.5 s), a history segment merged into a big one. Each
fold is a pure function of levels writers no longer insert into, so the structure hands those
levels to a `Fold`, goes on writing into a fresh level, and the writer swaps the result in at
its next write once the thread is done (O(rows written in place meanwhile), see the callers).
NumPy's and SciPy's loops release the GIL, so the writer keeps running beside the thread
(docs/benchmarks.md, issue 17.1). Reads see the same content before and after the swap.

`sharing_the_gil` is for a helper thread that does Python work beside writers (a fold, a
background snapshot streaming the state): the interpreter then hands the GIL over every 0.5 ms,
not 5 ms.

Structures only run a fold here when it is large (`BACKGROUND_ROWS`): a small fold costs less
than the thread, and small states (tests) stay single-threaded and deterministic."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Rows (entries, pairs, touches, owners) from which a fold runs on a thread. Below it a fold
#: costs a writer at most ~1-2 ms of CPU (a history merge ~80-130 ns a row, a keyed merge
#: 25-60, a profile column doubling ~60 ns an owner): at 1 << 18 the inline folds just under it
#: were the writers' worst stalls without any snapshot (a 131k-owner doubling 14-42 ms CPU,
#: history merges of up to 256k rows ~34 ms; benchmarks/scale_state.py at 1M, issue 17.1).
BACKGROUND_ROWS = 1 << 14


class Fold(Generic[T]):
    """`compute(*args)` on a daemon thread, with the switch interval lowered meanwhile
    (`sharing_the_gil`: a fold's Python work and its NumPy calls that keep the GIL are cut short
    for a waiting writer after 0.5 ms, not 5); `result()` waits for it and returns it (or raises
    what it raised). The arguments must not change while it runs (the caller's contract)."""

    def __init__(self, name: str, compute: Callable[..., T], *args: Any) -> None:
        self._compute, self._args = compute, args
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"pulserec-fold-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with sharing_the_gil():  # a writer waiting for the GIL takes it between the fold's calls
                self._value = self._compute(*self._args)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, which raises it
            self._error = exc
        finally:
            self._args = ()

    def ready(self) -> bool:
        """Whether `result()` returns without waiting."""
        return not self._thread.is_alive()

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def release(objects: list[T], empty: Callable[[T, Callable[[], None]], None]) -> threading.Thread:
    """Free `objects` (taken out of the state, which no longer reaches them) on a daemon thread:
    each one nothing else holds (a background snapshot's image may) is first emptied by
    `empty(obj, pause)` in steps, so writers take the GIL between them; a large structure freed
    at once is one C call that holds it throughout."""
    thread = threading.Thread(target=_release, args=(objects, empty), name="pulserec-release", daemon=True)
    thread.start()
    return thread


def _release(objects: list, empty: Callable[[Any, Callable[[], None]], None]) -> None:
    while objects:
        obj = objects.pop()
        if sys.getrefcount(obj) <= 2:  # `obj` and the call's argument: nobody else reads it
            empty(obj, _give_way)
        del obj


def _give_way() -> None:
    time.sleep(0.0001)  # a real sleep: a writer waiting for the GIL takes it now


def large(rows: int) -> bool:
    """Whether a fold of `rows` rows is worth a thread."""
    return rows >= BACKGROUND_ROWS


#: The interpreter's switch interval while a helper thread does Python work beside writers
#: (`sharing_the_gil`): a writer waiting for the GIL gets it after at most about this long.
#: CPython's default, 5 ms, was the writers' p99 during a background snapshot at 1M (5.3 ms).
SWITCH_INTERVAL_S = 0.0005
_sharing = 0
_sharing_lock = threading.Lock()
_switch_before = 0.005


@contextmanager
def sharing_the_gil() -> Iterator[None]:
    """Lower the switch interval to `SWITCH_INTERVAL_S` for the block (process-wide; nested
    and concurrent blocks, one per engine writing a snapshot, restore it when the last ends)."""
    global _sharing, _switch_before
    with _sharing_lock:
        if _sharing == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_before, SWITCH_INTERVAL_S))
        _sharing += 1
    try:
        yield
    finally:
        with _sharing_lock:
            _sharing -= 1
            if _sharing == 0:
                sys.setswitchinterval(_switch_before)
