"""What the engine's write path answers and raises: the result of an ingested batch, the error
of events stored but not applied (a shared state that cannot take them now), and the observers
told about every batch. Below `core.py` so that callers (routes, the replica, tests) name them
without the Engine."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@functools.cache
def state_unavailable() -> tuple[type[BaseException], ...]:
    """What a shared (Redis) state raises when it cannot answer now (down, stalled, resyncing).

    A function, so that the redis client is imported only where it is needed: `import redis`
    (it pulls in redis.asyncio) cost ~0.75 s of every CLI start, `pulserec import` included,
    though only a Redis state uses it. `except state_unavailable():` is evaluated only when an
    exception reaches it."""
    from pulserec.online.redis.connection import TRANSIENT, StateUnavailable

    return (StateUnavailable, *TRANSIENT)


def __getattr__(name: str) -> Any:
    """`STATE_UNAVAILABLE`, the tuple of :func:`state_unavailable`, built on first use."""
    if name == "STATE_UNAVAILABLE":
        return state_unavailable()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class IngestResult:
    accepted: int
    duplicates: int
    event_ids: list[str]
    accepted_mask: list[bool]


class StoredNotApplied(RuntimeError):
    """The events are durably stored but the shared state could not take them now. They are
    applied later, in order, by whichever process next syncs the state with the log (within
    `state_sync_interval_s` of the state coming back); a retry with the same event ids answers
    `duplicates` and changes nothing."""

    def __init__(self, result: IngestResult, cause: BaseException, retry_after_s: int = 2) -> None:
        super().__init__(f"stored {result.accepted} events but the online state is unavailable: {cause}")
        self.result = result
        self.retry_after_s = retry_after_s


class IngestListener(Protocol):
    """Told about every ingested batch, after its new events are applied to the online state."""

    def __call__(self, accepted_by_type: Mapping[str, int], duplicates: int, latest_ts: float | None) -> None: ...
