"""Histories' per-owner reads: right rows, and without touching the whole segment (issue 17.2)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from pulserec.online import history_segments
from pulserec.online.history import Histories, Touch
from pulserec.online.history_segments import merged, segment_of, tails


def _histories(n_rows: int, n_owners: int, max_len: int = 50) -> tuple[Histories, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    owners, items = rng.integers(0, n_owners, n_rows), rng.integers(0, 1_000, n_rows)
    histories = Histories(max_len)
    histories.add_many(owners, items, np.ones(n_rows), np.arange(n_rows, dtype=np.float64), np.full(n_rows, "view"))
    return histories, owners, items


def test_reads_equal_the_log_per_owner() -> None:
    histories, owners, items = _histories(20_000, 700)
    histories.add(5, Touch(999, 1.0, 1e9, "view"))  # a pending touch counts too
    for owner in (0, 5, 699, 700):  # 700: an owner without rows
        rows = np.flatnonzero(owners == owner)
        expected = items[rows].tolist() + ([999] if owner == 5 else [])
        assert [t.item for t in histories.recent(owner)] == expected[-50:]
        assert histories.seen(owner) == set(expected)
    segment = histories.segments[0]
    assert segment.rows(5) == slice(*np.searchsorted(segment.owner, [5, 6]).tolist())
    owner, item, _, _ = tails(histories.segments, np.array([3, 9], dtype=np.int64), 4)
    assert owner.tolist() == [3] * 4 + [9] * 4
    assert item.tolist() == items[owners == 3][-4:].tolist() + items[owners == 9][-4:].tolist()


def test_a_read_does_not_copy_the_segment() -> None:
    """An owner's rows are found by binary search in the int32 columns as they are: keys of
    another dtype made NumPy cast the whole column first (44 ms a call at 10M rows)."""
    histories, _, _ = _histories(1_000_000, 100_000)
    segment = histories.segments[0]
    assert segment.owner.dtype == np.int32 and segment.owner.nbytes >= 2_000_000
    tracemalloc.start()
    try:
        histories.recent(42)
        histories.seen(42)
        tails(histories.segments, np.array([42, 43], dtype=np.int64), 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < segment.owner.nbytes // 10


@pytest.mark.parametrize("calls_of", [history_segments.SLICE, 37])
def test_a_merge_equals_the_segment_of_both_logs(calls_of, monkeypatch) -> None:
    """`merged` places rows by binary search instead of re-sorting them: the same segment as
    `segment_of` over the older rows then the newer (owners in both, trimmed to max_len, seen
    pairs in both and pairs only the older one still holds); also with its searches and
    scatters cut into calls of a few rows (a helper thread's merge lets writers take the GIL)."""
    monkeypatch.setattr(history_segments, "SLICE", calls_of)
    rng = np.random.default_rng(11)

    def log(n: int) -> tuple[np.ndarray, ...]:
        return (rng.integers(0, 300, n), rng.integers(0, 80, n), rng.random(n), rng.integers(0, 5, n).astype(np.int8))

    for n_old, n_new, max_len in ((5_000, 3_000, 6), (40, 2_000, 50), (1, 0, 3), (0, 7, 2)):
        old, new = log(n_old), log(n_new)
        older, newer = segment_of(*old, max_len), segment_of(*new, max_len)
        both = segment_of(*(np.concatenate([a, b]) for a, b in zip(old, new)), max_len)
        result = merged(older, newer, max_len)
        for name in ("owner", "item", "ts", "kind", "seen_owner", "seen_item"):
            got, want = getattr(result, name), getattr(both, name)
            assert got.dtype == want.dtype and np.array_equal(got, want), name
