"""Online state: everything that every accepted event updates before it is acknowledged."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulserec.config import Settings
    from pulserec.online.base import State


def make_state(settings: Settings) -> State:
    """The state `settings` ask for: Redis-backed when `state_url` is set, else in-memory."""
    if settings.state_url:
        from pulserec.online.redis.state import RedisState

        return RedisState(settings)
    from pulserec.online.state import OnlineState

    return OnlineState(settings)
