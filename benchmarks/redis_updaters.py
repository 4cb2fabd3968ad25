"""Updaters applying Redis Streams sharded by owner to one Redis state: 1, 2, 4... processes.

Used by `redis_state.py --updaters 1,2,4` (or run alone, same options). For each N the first
`--stream-events` MovieLens ratings (time order) are published into N shards
(`stream_shards = N`), then N `StreamUpdater` processes (one per shard, batches of up to `DEFAULT_BATCH` = 2,000) drain
them. Reported per N: aggregate events/s (all events / wall time from the first updater's
first read to the last one's end, which includes its last background row compaction; the CPU
counts both of an updater's threads), events/s per updater, and CPU per event of the updaters and
of redis-server, so that the figures mean something on a shared box too: a per-core rate is
events / (updater CPU + Redis CPU) seconds."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import redis

from pulserec.config import Settings
from pulserec.events import events_from_frame
from pulserec.online.redis.state import RedisState
from pulserec.online.streams import make_updater
from pulserec.online.streams.redis_streams import EventPublisher
from pulserec.online.streams.updater import DEFAULT_BATCH
from pulserec.urls import stream_key

HERE = Path(__file__).resolve().parent


def worker(url: str, namespace: str, shards: int, shard: int, batch: int = DEFAULT_BATCH) -> None:
    """One updater process: drain its shard, print {events, start, end, cpu} as JSON."""
    settings = Settings(state_url=url, state_namespace=namespace, stream_url=url, stream_shards=shards)
    state = RedisState(settings)
    state.catalog.synced()  # attach: the catalogue mirror is loaded once at start, not per event (~0.15 s CPU)
    gc.freeze()  # as `pulserec updater` does
    updater = make_updater(settings, state, consumer=f"bench-{shard}", shard=shard, batch=batch)
    handled, idle = 0, 0
    start = end = cpu_start = cpu_end = 0.0
    while idle < 3:  # three empty reads in a row, 0.2 s apart: the shard is drained
        wall, cpu = time.perf_counter(), time.process_time()
        n = updater.step(block_ms=0)
        if n and not handled:
            start, cpu_start = wall, cpu  # perf_counter is CLOCK_MONOTONIC: comparable across processes
        handled += n
        if n:
            idle = 0
            continue
        if handled and not idle:  # the first empty read waited for the background compaction: the clock stops
            end, cpu_end = time.perf_counter(), time.process_time()
        idle += 1
        time.sleep(0.2)
    updater.close()
    print(json.dumps({"events": handled, "start": start, "end": end, "cpu": cpu_end - cpu_start}))

def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def scaling(url: str, ratings, movies, counts: list[int], n_events: int) -> list[list[object]]:
    """One table row per updater count."""
    events = events_from_frame(ratings.head(n_events))
    client = redis.Redis.from_url(url)
    rows = []
    for n in counts:
        namespace = f"scale{n}"
        settings = Settings(state_url=url, state_namespace=namespace, stream_url=url, stream_shards=n)
        state = RedisState(settings)
        state.catalog.upsert_many(movies)
        for shard in range(n):  # groups first, so that no published event is missed
            make_updater(settings, state, consumer="setup", shard=shard).close()
        publisher = EventPublisher(url, stream_key(settings), shards=n)
        for start in range(0, len(events), 5000):
            publisher.publish([(e, start + i + 1) for i, e in enumerate(events[start:start + 5000])])
        before = redis_cpu(client)
        procs = [subprocess.Popen([sys.executable, str(HERE / "redis_updaters.py"), "--worker", url, namespace, str(n),
                                   str(k)], stdout=subprocess.PIPE, text=True) for k in range(n)]
        results = [json.loads(p.communicate(timeout=600)[0].strip().splitlines()[-1]) for p in procs]
        server_cpu = redis_cpu(client) - before
        total = sum(r["events"] for r in results)
        wall = max(r["end"] for r in results) - min(r["start"] for r in results)
        cpu = sum(r["cpu"] for r in results)
        assert state.applied == total == len(events), (state.applied, total, len(events))
        rows.append([n, total / wall, total / wall / n, cpu / total * 1e6, server_cpu / total * 1e6,
                     total / (cpu + server_cpu), os.getloadavg()[0]])
        publisher.close()
        state.reset()
        state.close()
    client.close()
    return rows


HEADERS = ["updaters", "aggregate events/s", "events/s per updater", "updater CPU us/event", "Redis CPU us/event",
           "events per CPU-second (updaters + Redis)", "load (1 min) at the end"]

if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
