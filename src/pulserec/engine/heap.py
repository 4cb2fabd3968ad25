"""Hands the free memory of glibc's malloc heap back to the kernel after the engine built a
large state (a start, a bulk import): a smaller RSS (and, at some sizes, a shorter snapshot fork).

A build allocates and frees many mid-sized buffers (pandas and NumPy temporaries of each chunk);
glibc keeps their pages mapped for reuse. Those 4 KiB pages cost twice: in RSS, and in the
page tables a fork copies while writers wait (`online/snapshots.py` forks under the engine
lock). Measured on the shop's state (benchmarks/scale_state.py): at 1M events RSS 575 -> 434 MiB and
the fork 24.6 -> 10.0 ms; at 10M 1.79 -> 1.43 GiB. The fork does not always gain: at 4M it went
16.7 -> 21.8 ms, as pages handed back inside NumPy's transparent huge pages split them (see
docs/benchmarks.md). One `malloc_trim(0)` took 10 ms at 1M. Called where the work is done, not
on the request path."""

from __future__ import annotations

import ctypes
import gc

_libc: ctypes.CDLL | None = None
_tried = False


def _glibc() -> ctypes.CDLL | None:
    global _libc, _tried
    if not _tried:
        _tried = True
        try:
            libc = ctypes.CDLL("libc.so.6")
            _libc = libc if hasattr(libc, "malloc_trim") else None
        except OSError:  # not glibc (macOS, musl): nothing to hand back this way
            _libc = None
    return _libc


def trim_heap() -> bool:
    """Return the heap's free pages to the kernel (glibc's malloc_trim(0)); False where there is
    no glibc or nothing could be released."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))


def settle_after_build() -> None:
    """After a large build (a start, a bulk import): the objects it made live as long as the
    process, so move them out of the cyclic collector's sight (gc.freeze: its full passes no
    longer walk them; refcounting still frees them), and hand the freed heap back (`trim_heap`).
    A bulk import into a serving process used to leave its objects in every full pass."""
    gc.freeze()
    trim_heap()
