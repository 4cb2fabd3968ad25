"""User profiles in Redis: one JSON document per owner in the `profiles` hash.

Profiles change by read-modify-write with the very `UserProfile.update` / `apply_log` code of
the in-memory state; the owner's version (checked by COMMIT) makes concurrent writers retry
instead of losing an update."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pulserec.online.redis.codec import decode_profile
from pulserec.profiles.profile import UserProfile

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState


class RedisProfiles:
    """The `Profiles` read interface (get, len)."""

    def __init__(self, state: RedisState, interest_halflife: float) -> None:
        self.state = state
        self.interest_halflife = interest_halflife

    def get(self, owner: int) -> UserProfile | None:
        return decode_profile(self.state.client.hget(self.state.keys.profiles, owner), self.interest_halflife)

    def __len__(self) -> int:
        return int(self.state.client.hlen(self.state.keys.profiles))
