"""After a large build: the heap trim hands freed malloc pages back, the build's objects leave
the cyclic collector's full passes (engine/heap.py)."""

from __future__ import annotations

import gc
import os
import weakref

import numpy as np

from pulserec.engine.heap import settle_after_build, trim_heap


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


def test_a_settled_build_is_out_of_the_collectors_passes_and_still_freed_by_refcount() -> None:
    """What a start or a bulk import built is frozen (gc.freeze): a full collection no longer
    walks it, and dropping it still frees it."""

    class Built:
        pass

    built = Built()
    built.rows = [[i] for i in range(1_000)]  # containers the collector tracks
    ids = {id(x) for x in built.rows}
    try:
        assert ids <= {id(x) for x in gc.get_objects()}
        settle_after_build()
        assert gc.get_freeze_count() >= len(ids)
        assert not ids & {id(x) for x in gc.get_objects()}  # out of every generation's passes
        alive = weakref.ref(built)
        del built
        assert alive() is None  # freed by refcount, frozen or not
    finally:
        gc.unfreeze()
