"""The Redis Streams updater reads the next batch ahead and compacts rows beside the next one:
each owner's order and exactly-once hold through a failed apply, and deferred compactions
leave the same rows as compacting at once."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import redis

from pulserec.config import Settings
from pulserec.events import Event
from pulserec.online.redis.codec import decode_pairs
from pulserec.online.redis.state import RedisState
from pulserec.online.streams.redis_streams import EventPublisher, StreamUpdater
from pulserec.urls import stream_key
from stream_helpers import NOW


@pytest.fixture
def settings(tmp_path, redis_server) -> Settings:
    return Settings(data_dir=tmp_path, state_url=redis_server.url, stream_url=redis_server.url,
                    state_namespace=redis_server.namespace())


class FailsOnceAfterReadAhead:
    """Fails its second apply (nothing applied) once the batch after it is read ahead, i.e.
    pending for this consumer beside the failing one: the case where order could break."""

    def __init__(self, state: RedisState, client: redis.Redis, key: str, group: str) -> None:
        self.state, self.client, self.key, self.group, self.calls = state, client, key, group, 0

    def apply_delivered(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            deadline = time.monotonic() + 5
            while self.client.xpending(self.key, self.group)["pending"] < 8 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert self.client.xpending(self.key, self.group)["pending"] == 8  # batches 2 and 3
            raise redis.ConnectionError("Redis went away mid-batch")
        return self.state.apply_delivered(frame)

    def forgotten(self, event_ids: list[str]) -> list[bool]:
        return self.state.forgotten(event_ids)


def publish(settings: Settings, events: list[Event]) -> None:
    publisher = EventPublisher(settings.stream_url, stream_key(settings))
    publisher.publish([(event, i + 1) for i, event in enumerate(events)])
    publisher.close()


def drain(worker: StreamUpdater) -> None:
    idle = 0
    while idle < 2:
        try:
            idle = 0 if worker.step(block_ms=0) else idle + 1
        except redis.ConnectionError:
            assert worker.retryable(redis.ConnectionError())
            idle = 0


def test_a_failed_batch_is_applied_again_before_the_one_read_ahead(settings):
    state = RedisState(settings)
    worker = StreamUpdater(state, settings.stream_url, stream_key(settings), consumer="c", batch=4, block_ms=0)
    worker.state = FailsOnceAfterReadAhead(state, worker.client, worker.key, worker.group)
    publish(settings, [Event(f"e{i}", "u", f"item-{i}", "view", NOW + i) for i in range(12)])
    drain(worker)
    assert worker.state.calls > 3
    assert (state.applied, worker.stats.applied, worker.stats.duplicates) == (12, 12, 0)
    history = [state.catalog.item_ids.id_of(touch.item) for touch in state.histories.recent(state.owners.get("u"))]
    assert history == [f"item-{i}" for i in range(12)]  # the owner's order, although batch 3 was read first
    assert worker.client.xpending(worker.key, worker.group)["pending"] == 0
    worker.close()


def row_state(state: RedisState, item_id: str) -> tuple[int, dict[int, float]]:
    """(compactions of the item's row, its stored entries summed per other item)."""
    item = state.catalog.item_ids.get(item_id)
    others, weights = decode_pairs(state.client.get(state.keys.row(item)))
    summed: dict[int, float] = {}
    for other, weight in zip(others.tolist(), weights.tolist()):
        summed[other] = summed.get(other, 0.0) + weight
    return int(state.client.hget(state.keys.row_gen, item) or 0), {k: round(v, 9) for k, v in summed.items()}


def test_deferred_compactions_leave_the_rows_of_compacting_at_once(settings):
    # 400 users view "a" and an item of their own: row "a" gets an entry per user, past the
    # compaction size (COMPACT_BYTES)
    events = [Event(f"{u}-{k}", f"user{u}", item, "view", NOW + 2 * u + k)
              for u in range(400) for k, item in enumerate(("a", f"x{u}"))]
    publish(settings, events)
    deferred = RedisState(settings)
    worker = StreamUpdater(deferred, settings.stream_url, stream_key(settings), consumer="c", batch=100, block_ms=0)
    drain(worker)
    worker.close()
    at_once = RedisState(Settings(**{**settings.__dict__, "state_namespace": settings.state_namespace + "-b"}))
    for start in range(0, len(events), 100):
        at_once.apply_many([(event, start + i + 1) for i, event in enumerate(events[start:start + 100])])
    generations, rows = row_state(deferred, "a")
    assert generations >= 1  # compacted on the updater's background thread
    assert (generations, rows) == row_state(at_once, "a")
