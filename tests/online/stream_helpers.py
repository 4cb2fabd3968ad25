"""What the Redis Streams and the Kafka stream tests share: events, counts, a crashing state."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from pulserec.events import Event
from pulserec.online.redis.state import RedisState

NOW = time.time() - 3600


def events(n: int, user: str = "u", users: int = 1) -> list[Event]:
    """n views of 4 items by `user` (or, with users > 1, by user0..user<users-1> in turn)."""
    return [Event(f"{user}-{i}", f"{user}{i % users}" if users > 1 else user, f"item-{i % 4}", "view", NOW + i)
            for i in range(n)]


def counts(state: RedisState, user: str = "u") -> tuple[int, int, int]:
    """(events applied, events counted by popularity, events in the user's profile)."""
    owner = state.owners.get(user)
    profile = state.profiles.get(owner) if owner is not None else None
    return state.applied, int(state.popularity.events.sum()), profile.event_count if profile else 0


class CrashingState:
    """Applies `survive` events, then dies (before the batch is acknowledged or committed)."""

    def __init__(self, state: RedisState, survive: int) -> None:
        self.state, self.left = state, survive

    def apply_delivered(self, frame: pd.DataFrame) -> np.ndarray:
        done = self.state.apply_delivered(frame.head(self.left))
        if len(frame) > self.left:
            raise RuntimeError("consumer crashed")
        self.left -= len(frame)
        return done

    def forgotten(self, event_ids: list[str]) -> list[bool]:
        return self.state.forgotten(event_ids)
