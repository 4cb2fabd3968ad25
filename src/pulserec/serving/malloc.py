"""A serving process's memory allocator: glibc's malloc arenas capped before its threads start
(`pulserec serve` and each `--workers` worker call it)."""

from __future__ import annotations

import ctypes
import os

#: glibc malloc arenas a serving process uses. Route handlers run in FastAPI's thread pool (plain
#: `def`), and glibc gives threads arenas of their own (up to 8 per core): a request's large
#: temporary arrays (a long-term query gathers ~150 co-occurrence rows, a few MB) then stay spread
#: over many arenas. Measured on MovieLens: 16 threads x 150 recommendations grew the RSS by
#: 286 MiB with glibc's default, 19 MiB with 2 arenas. The engine lock serialises the requests'
#: work anyway, so more arenas buy no parallelism.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas before the server's threads start; True when set. Not where
    there is no glibc (macOS, musl), nor when MALLOC_ARENA_MAX is set (the operator chose)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))
