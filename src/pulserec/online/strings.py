"""Many strings as one UTF-8 byte buffer and offsets: what a snapshot stores instead of objects."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple

import numpy as np


def pack(strings: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as (UTF-8 bytes, int64 offsets of len n+1); surrogates survive the round trip."""
    encoded = [s.encode("utf-8", "surrogatepass") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def unpack(data: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = data.tobytes()
    bounds = offsets.tolist()
    return [raw[a:b].decode("utf-8", "surrogatepass") for a, b in zip(bounds[:-1], bounds[1:])]


#: Strings encoded between two looks at the clock, and the Python work between two pauses of
#: a background snapshot (a writer waiting for the GIL waits about this long, not the 5 ms
#: switch interval).
STEP, PAUSE_EVERY_S = 256, 0.001


class Pieces(NamedTuple):
    """`pack`'s two arrays as consecutive pieces (the offsets' first piece starts with 0)."""

    data: list[np.ndarray]
    offsets: list[np.ndarray]
    n_bytes: int


def pack_in_steps(strings: Iterable[str], n: int, pause: Callable[[], None]) -> Pieces:
    """`pack` of `n` strings (an iterator may produce them: record JSON) in pieces of `STEP`,
    calling `pause` about every `PAUSE_EVERY_S` of work: a background snapshot lets writers
    take the GIL, and no C loop over all strings holds it (lengths and the join of 1M ids
    take ~40 ms in one call)."""
    data, offsets = [], [np.zeros(1, dtype=np.int64)]
    it, end, last = iter(strings), 0, time.perf_counter()
    for start in range(0, n, STEP):
        encoded = [s.encode("utf-8", "surrogatepass") for s in itertools.islice(it, min(STEP, n - start))]
        data.append(np.frombuffer(b"".join(encoded), dtype=np.uint8))
        offsets.append(end + np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))))
        end = int(offsets[-1][-1]) if len(encoded) else end
        if time.perf_counter() - last > PAUSE_EVERY_S:
            pause()
            last = time.perf_counter()
    return Pieces(data, offsets, end)
