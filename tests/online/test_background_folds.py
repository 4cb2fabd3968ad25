"""Folds on a helper thread (pulserec/background.py): a structure that merges a large level on a
thread reads the same before, during and after the merge, and ends as the same state as the
one that merged inside the write (issue 17.1). Each thread is held at a gate, so the writes
made while it runs are certain to happen, also to rows the merge reads."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from pulserec import background
from pulserec.online import cooccurrence, history
from pulserec.online.cooccurrence import CoOccurrence, DeltaRows
from pulserec.online.history import Histories, Touch
from pulserec.profiles import keyed
from pulserec.profiles import table as table_module
from pulserec.profiles.table import ProfileTable
from pulserec.profiles.keyed import KeyedTable

HALFLIFE = 3600.0


class HeldFold(background.Fold):
    """A fold whose thread starts computing only once the test opens `gate`."""

    gate = threading.Event()
    started: list[HeldFold] = []

    def __init__(self, name, compute, *args) -> None:
        HeldFold.started.append(self)
        super().__init__(name, self._held, compute, *args)

    #: Compute at once and hold the result (the writes then all come after the thread's read).
    compute_first = False

    @staticmethod
    def _held(compute, *args):
        value = compute(*args) if HeldFold.compute_first else None
        if not HeldFold.gate.wait(10):
            raise TimeoutError("the test never opened the gate")
        return value if HeldFold.compute_first else compute(*args)


@pytest.fixture
def held(monkeypatch):
    """Every fold in the background, however small, each held at the gate."""
    HeldFold.gate.clear()
    HeldFold.started = []
    monkeypatch.setattr(background, "BACKGROUND_ROWS", 0)
    monkeypatch.setattr(keyed, "Fold", HeldFold)
    monkeypatch.setattr(KeyedTable, "delta_limit", lambda self: max(len(self.main[0]) // 4, 64))
    yield HeldFold
    HeldFold.gate.set()


def _keyed_ops(seed: int) -> list[tuple]:
    """Batches and single entries over 40 owners x 25 codes, reads of every owner, a snapshot's
    view of the levels, an erasure; times rise, with some late entries."""
    rng = np.random.default_rng(seed)
    ops: list[tuple] = []
    clock = 0.0
    for step in range(160):
        clock += 60.0
        if step == 20:  # a main to merge into; the next merge waits at the gate while writes go on
            ops += [("merge",), ("close",)]
        if step == 30:
            ops.append(("snapshot",))
        if step == 36:
            ops.append(("open",))
        if step == 120:
            ops.append(("erase", 7))
        n = int(rng.integers(1, 30))
        keys = (rng.integers(0, 40, n).astype(np.int64) << 32) | rng.integers(0, 25, n)
        ts = clock - rng.choice([0.0, 0.0, 0.0, 900.0], n)
        ops.append(("add", keys, rng.random(n), ts) if step % 3 else ("one", int(keys[0]), float(ts[0])))
        if step % 10 == 0:
            ops.append(("read",))
    return [*ops, ("read",), ("merge",), ("read",)]


def _run(ops: list[tuple], gate: threading.Event | None) -> tuple[list, KeyedTable]:
    table, seen, held, closed = KeyedTable(HALFLIFE), [], 0, False
    for op in ops:
        if op[0] == "add":
            table.add(op[1], op[2], op[3])
        elif op[0] == "one":
            table.add_one(op[1], 1.0, op[2])
        elif op[0] == "merge":
            table.merge()
        elif op[0] == "erase":
            table.erase(op[1])
        elif op[0] in ("open", "close") and gate is not None:
            gate.set() if op[0] == "open" else gate.clear()
        elif op[0] == "read":
            seen.append([tuple(map(np.ndarray.tolist, table.of(owner))) for owner in range(40)])
        elif op[0] == "snapshot":  # what a snapshot of the levels loads as
            main, delta, later = table.levels()
            fresh = KeyedTable(HALFLIFE)
            fresh.load(*main, delta=delta, pending=tuple(np.concatenate(c) for c in zip(*later)))
            seen.append([tuple(map(np.ndarray.tolist, fresh.of(owner))) for owner in range(40)])
        closed = (closed or op[0] == "close") and op[0] != "open"
        held += closed and table._fold is not None  # ops while a merge waits at the gate
    assert gate is None or held > 10, "no merge was running while the gate was closed"
    return seen, table


def test_a_keyed_table_merging_on_a_thread_reads_and_ends_as_one_merging_in_place(held):
    ops = _keyed_ops(11)
    held.gate.set()  # open until the ops close it
    with pytest.MonkeyPatch.context() as mp:  # the reference: every merge inside the write
        mp.setattr(background, "BACKGROUND_ROWS", 1 << 60)
        expected, reference = _run(ops, None)
    got, table = _run(ops, held.gate)
    assert len(held.started) >= 3  # merges ran on threads: before the gate closed, one held across writes, after
    assert all(fold.ready() and fold._error is None for fold in held.started)  # none waited for the gate
    assert table._fold is None and table._sealed is None
    assert got == expected  # every read, the snapshot's view and the erased owner's emptiness
    for mine, theirs in zip(table.main, reference.main):
        np.testing.assert_array_equal(mine, theirs)


def test_sharing_the_gil_lowers_the_switch_interval_until_the_last_block_ends():
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError):
        with background.sharing_the_gil():
            assert sys.getswitchinterval() == background.SWITCH_INTERVAL_S
            with background.sharing_the_gil():  # another engine's snapshot, say
                pass
            assert sys.getswitchinterval() == background.SWITCH_INTERVAL_S
            raise RuntimeError("the snapshot failed")
    assert sys.getswitchinterval() == before


def _cooc() -> CoOccurrence:
    return CoOccurrence(window=3, gap_tau=3600.0, min_delta=60, max_neighbours=4, evict_halflife=86_400.0)


def _rows(cooc: CoOccurrence) -> list:
    return [tuple(part.tolist() for part in cooc.row(item)) for item in range(30)]


def test_a_co_occurrence_compacting_on_a_thread_makes_the_inline_compactions_base(held, monkeypatch):
    """Three copies fed the same events: one compacts inline, one on a thread held at the gate,
    one inline at the first compaction only (its rows are what the unfolded levels hold). While the fold waits the held copy
    reads as the one that never compacts (a snapshot's seal between); once swapped in, as the
    inline one, base and all; a bulk update while a fold runs waits for it."""
    monkeypatch.setattr(cooccurrence, "Fold", HeldFold)
    rng = np.random.default_rng(4)
    inline, threaded, never = _cooc(), _cooc(), _cooc()
    histories: dict[int, list[Touch]] = {}
    compacted_inline = 0
    held.gate.set()

    def event(k: int) -> None:
        owner, item = int(rng.integers(0, 12)), int(rng.integers(0, 30))
        touch = Touch(item, float(rng.choice([1.0, 3.0])), 1.7e9 + 60.0 * k, "view")
        recent = histories.setdefault(owner, [])[-3:]
        for cooc in (inline, threaded, never):
            with monkeypatch.context() as mp:
                if cooc is not threaded:
                    mp.setattr(background, "BACKGROUND_ROWS", 1 << 60)
                cooc.add_event(touch.item, touch.weight, touch.ts, reversed(recent))
        histories[owner].append(touch)
        if threaded._fold is not None and held.gate.is_set():
            threaded._fold.result()  # done before the next event swaps it in: the inline copy's point

    k = 0
    while len(held.started) < 1:  # a first fold, not held, swapped in at the next event
        event(k := k + 1)
    never.min_delta = 1 << 40  # it compacted inline at that event too, and never again
    held.gate.clear()
    while len(held.started) < 2:
        event(k := k + 1)
    fold = threaded._fold
    assert fold is not None and not fold.ready()
    for cooc in (inline, threaded, never):
        cooc.seal()  # a background snapshot's capture while the fold waits
    for _ in range(5):  # fewer pairs than the inline copy's next compaction needs
        event(k := k + 1)
        assert _rows(threaded) == _rows(never)
    held.gate.set()
    owners = np.zeros(6, dtype=np.int64)
    items, weights, ts = np.arange(6), np.ones(6), 1.7e9 + 60.0 * (k + np.arange(6))
    for cooc in (inline, threaded, never):
        cooc.add_log(owners, items, weights, ts)  # waits for the fold, then adds to the middle level
    assert threaded._fold is None and fold.ready()
    for _ in range(40):
        event(k := k + 1)
    assert _rows(threaded) == _rows(inline)
    for cooc in (inline, threaded):
        cooc.compact()
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(threaded.base, name), getattr(inline.base, name))
    assert all(f.ready() and f._error is None for f in held.started)


def _histories_view(histories: Histories) -> list:
    return [(histories.recent(owner), sorted(histories.seen(owner)),
             [column.tolist() for column in histories.recent_columns(owner)]) for owner in range(25)]


def test_histories_merging_segments_on_a_thread_read_as_inline_merges(held, monkeypatch):
    """Per-event touches flushed every 16: the size-tiered merges of one copy run on threads (one
    held at the gate across flushes, the merges above it inline), of the other inline; every
    read is the same throughout, and both end as the same single segment."""
    monkeypatch.setattr(history, "FLUSH_AT", 16)
    monkeypatch.setattr(history, "Fold", HeldFold)
    rng = np.random.default_rng(8)
    threaded, inline = Histories(max_len=6), Histories(max_len=6)
    held.gate.set()

    def touch(k: int) -> None:
        owner, item = int(rng.integers(0, 25)), int(rng.integers(0, 40))
        for histories in (threaded, inline):
            with monkeypatch.context() as mp:
                if histories is inline:
                    mp.setattr(background, "BACKGROUND_ROWS", 1 << 60)
                histories.add(owner, Touch(item, 1.0, 1.7e9 + k, "view"))

    k = 0
    for k in range(200):
        touch(k)
    held.gate.clear()
    while threaded._fold is None:
        touch(k := k + 1)
    for _ in range(80):  # five more flushes above the held merge
        touch(k := k + 1)
        assert _histories_view(threaded) == _histories_view(inline)
    assert threaded._fold is not None and len(threaded.segments) > len(inline.segments)
    held.gate.set()
    threaded.forget(3), inline.forget(3)  # waits for the merge: forgetting replaces segments
    for _ in range(300):
        touch(k := k + 1)
    assert _histories_view(threaded) == _histories_view(inline)
    np.testing.assert_array_equal(threaded.owner_counts, inline.owner_counts)
    one, other = threaded.compact(), inline.compact()
    for name in ("owner", "item", "ts", "kind", "seen_owner", "seen_item"):
        np.testing.assert_array_equal(getattr(one, name), getattr(other, name))
    assert all(f.ready() and f._error is None for f in held.started)


def test_profile_columns_grown_on_a_thread_hold_every_write_made_meanwhile(held, monkeypatch):
    """Owners arrive one by one past 3/4 of the columns' room: one table doubles them on a
    thread (its copy held at the gate) while events of old and new owners go on, the other
    inline; the columns and every profile are the same, the rows written meanwhile too."""
    monkeypatch.setattr(table_module, "Fold", HeldFold)
    monkeypatch.setattr(HeldFold, "compute_first", True)
    rng = np.random.default_rng(9)
    threaded, inline = (ProfileTable(3600.0, name_of=str) for _ in range(2))
    held.gate.set()

    def event(owner: int, k: int) -> None:
        kind = str(rng.choice(["view", "buy"]))
        for profiles in (threaded, inline):
            with monkeypatch.context() as mp:
                if profiles is inline:
                    mp.setattr(background, "BACKGROUND_ROWS", 1 << 60)
                profiles.update(owner, kind, 1.0, 1.7e9 + 60.0 * k, "c1", ("t1",), None, None)

    for owner in range(700):
        event(owner, owner)
    held.gate.clear()
    k = 700
    for owner in range(700, 1000):  # past 3/4 of 1,024: the grow starts and waits
        event(owner, k := k + 1)
        event(int(rng.integers(0, owner)), k := k + 1)  # an old owner's row, written meanwhile
    assert threaded._grow is not None and len(threaded.exists) == 1024
    held.gate.set()
    for owner in range(1000, 1500):
        event(owner, k := k + 1)
    assert threaded._grow is None and len(threaded.exists) == len(inline.exists) == 2048
    for name in ("exists", "counts"):
        np.testing.assert_array_equal(getattr(threaded, name), getattr(inline, name))
    for name in threaded.dense:
        np.testing.assert_array_equal(threaded.dense[name], inline.dense[name])
    assert all(threaded.get(o).to_state() == inline.get(o).to_state() for o in range(0, 1500, 7))
    assert all(f.ready() and f._error is None for f in held.started)


def test_released_levels_are_emptied_in_steps_unless_something_still_reads_them(monkeypatch):
    """A folded co-occurrence level is freed on a thread a step of rows at a time (at once it
    held the GIL 15-50 ms at 10M); one a snapshot's image still holds is left whole."""
    monkeypatch.setattr(cooccurrence, "DISCARD_STEP", 3)
    levels = [DeltaRows(), DeltaRows()]
    for level in levels:
        for row in range(10):
            level.extend(row, [row + 1, row + 2], [1.0, 0.5])
    del level  # the loop's name held the last level
    image = [levels[0]]  # a background snapshot's reference
    emptied, pauses = [], []

    def empty(level, pause):
        DeltaRows.discard_in_steps(level, lambda: (pauses.append(1), pause()))
        emptied.append((level.nnz, len(level._rows)))

    background.release(levels, empty).join(10)
    assert emptied == [(0, 0)] and len(pauses) == 4  # only the unheld one, 10 rows in steps of 3
    assert image[0].nnz == 20 and image[0].get(4)[0].tolist() == [5, 6]
