"""The state wrapper both stalling updaters use: it applies the first batch, says so, and hangs
before the updater can acknowledge (Redis Streams) or commit (Kafka) it, so that the test can
SIGKILL the process exactly between apply and acknowledgement."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from pulserec.online.redis.state import RedisState


class StallingState:
    def __init__(self, state: RedisState) -> None:
        self.state = state

    def apply_delivered(self, frame: pd.DataFrame) -> np.ndarray:
        done = self.state.apply_delivered(frame)
        print(f"applied {sum(done)}", flush=True)
        time.sleep(3600)  # killed here: applied, never acknowledged or committed
        return done

    def forgotten(self, event_ids: list[str]) -> list[bool]:
        return self.state.forgotten(event_ids)
