"""The heap trim after a large build hands freed malloc pages back (engine/heap.py)."""

from __future__ import annotations

import os

import numpy as np

from pulserec.engine.heap import trim_heap


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_trim_returns_freed_heap_pages() -> None:
    """Mid-sized buffers (what a bulk build's temporaries are) freed with a live one after them
    stay mapped in glibc's heap until trimmed; the trim releases them."""
    arrays = [np.ones(2_000) for _ in range(10_000)]  # 16 kB each, from malloc's heap: ~160 MB
    keep = arrays[-1]
    del arrays
    before = _rss()
    assert trim_heap() is True
    released = before - _rss()
    assert released > 100 * 2 ** 20, f"released {released / 2 ** 20:.0f} MiB"
    assert keep.sum() == 2_000  # what is live is untouched
