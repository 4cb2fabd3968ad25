"""A serving process caps glibc's malloc arenas (serving/malloc.py:limit_malloc_arenas): request
handlers run in a thread pool, and per-thread arenas kept the requests' large temporary arrays
(measured: +286 MiB over 16 threads on MovieLens; +19 MiB capped)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from pulserec.serving.malloc import limit_malloc_arenas

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None

#: 16 threads, each allocating and dropping 4 MB arrays (what a long-term query's gather does):
#: prints the RSS growth in MiB. Run in a fresh interpreter, so the arenas are that process's own.
PROBE = textwrap.dedent("""
    import os, sys, threading
    import numpy as np
    from pulserec.serving.malloc import limit_malloc_arenas
    if sys.argv[1] == "capped":
        assert limit_malloc_arenas()
    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    lock = threading.Lock()
    def work():
        for _ in range(4):
            with lock:  # serialised like the engine's work
                parts = [np.ones(500_000) for _ in range(2)]
                del parts
    before = rss()
    threads = [threading.Thread(target=work) for _ in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(rss() - before)
""")


def _growth(mode: str) -> float:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=env, timeout=120,
                         check=True).stdout
    return float(out.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="the cap is a glibc call")
def test_capped_arenas_keep_threaded_allocations_from_growing_the_rss():
    capped, default = _growth("capped"), _growth("default")
    assert capped < 40, capped
    assert default > capped + 20, (default, capped)  # what the cap is for


def test_an_operators_malloc_arena_max_is_left_alone(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False
