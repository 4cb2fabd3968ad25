"""Token buckets per caller (a publishable key and a client address), for the browser SDK's routes."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

#: Buckets kept at most; the least recently used is dropped first. A dropped caller starts again
#: with a full bucket, so the bound costs at most one burst per evicted caller; 100k buckets
#: are ~20 MB, enough for every address a busy shop's visitors arrive from within a burst time.
MAX_BUCKETS = 100_000


class RateLimiter:
    """`rate` requests per second per caller, bursts of up to `burst`.

    Not thread-safe, and it need not be: it is called from `async` dependencies, which run on
    the event loop's one thread. Each server process counts for itself (with `--workers N` a
    caller gets up to N times the rate; docs/integration.md says so)."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = MAX_BUCKETS) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # caller -> (tokens, as of)

    def wait(self, caller: Hashable) -> float:
        """Take one token for `caller`: 0.0 when it had one, else the seconds until it will."""
        now = self.clock()
        tokens, since = self._buckets.pop(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - since) * self.rate)
        waited = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        self._buckets[caller] = (tokens - 1.0 if not waited else tokens, now)
        if len(self._buckets) > self.max_buckets:
            self._buckets.popitem(last=False)
        return waited
