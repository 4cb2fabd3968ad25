"""The Redis state (issue 7) next to the in-memory state, in one run, on MovieLens latest-small.

    python benchmarks/redis_state.py [--movielens PATH] [--requests 2000] [--seeds 3] [--redis URL]
    python benchmarks/redis_state.py --updaters 1,2,4 --stream-events 60000 --only-updaters

Without --redis a throwaway local redis-server (no persistence) is started. Everything is
in-process (no HTTP), so the figures are the engine's own cost plus, for Redis, the round trips."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from _common import machine, percentiles_ms, print_table, serving_latency, time_each
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.ingest.movielens import read_movies, read_ratings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the throwaway redis-server is a test helper
from local_redis import LocalRedis  # noqa: E402
from redis_updaters import HEADERS, scaling  # noqa: E402


def bench(ratings, movies, requests: int, overrides: dict[str, str], updates: int, seeds: int = 1) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(tmp, **overrides)
        engine = Engine(settings)
        engine.put_items(movies)
        start = time.perf_counter()
        engine.ingest_frame(ratings)
        out["bulk import (store + state), events/s"] = len(ratings) / (time.perf_counter() - start)

        for label in ("first", "next"):  # Redis: the first start after an import checks its events once
            start = time.perf_counter()
            Engine(settings).close()
            out[f"{label} process start after import (memory: replay; Redis: attach), s"] = time.perf_counter() - start
        # Requests are timed in a process started on the imported store, as `pulserec serve` is:
        # what a start builds is kept out of the collector's full passes (Engine,
        # FREEZE_AFTER_EVENTS); the importing process holds the import's objects in them.
        engine.close()
        engine = Engine(settings)

        cache = engine.service.models.item_knn.long_term_cache  # item-kNN's kept long-term parts
        for seed in range(seeds):  # each seed its own random users (the spread of repeats)
            hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
            latency = serving_latency(engine, ratings, requests, seed)
            out.update({f"{name} (seed {seed})" if seeds > 1 else name: value for name, value in latency.items()})
            if cache is not None:  # warm-up included: a user's first request gathers their whole history
                hits, misses = cache.hits - hits, cache.misses - misses
                out[f"long-term part kept, share of requests (seed {seed})"] = hits / max(hits + misses, 1)
        out.update(returning_users(engine, ratings))
        rng = np.random.default_rng(0)
        picks = rng.choice(ratings["user_id"].unique(), requests)
        items = ratings["item_id"].unique()

        live = [Event(f"live-{i}", str(picks[i % requests]), str(items[rng.integers(len(items))]), "view",
                      1_537_800_000.0 + i) for i in range(3 * updates)]
        start = time.perf_counter()
        for event in live[:updates]:
            engine.state.apply(event)
        out["online update (state only, one event per call), events/s"] = updates / (time.perf_counter() - start)
        start = time.perf_counter()
        for k in range(updates, 2 * updates, 100):  # what `pulserec updater` does with a stream batch
            engine.state.apply_many([(e, 0) for e in live[k : k + 100]])
        out["online update (state only, batches of 100), events/s"] = updates / (time.perf_counter() - start)
        start = time.perf_counter()
        for k in range(2 * updates, 3 * updates, 100):
            engine.ingest(live[k : k + 100])
        out["online ingest (store + state, batches of 100), events/s"] = updates / (time.perf_counter() - start)
        if settings.state_url:
            client = redis.Redis.from_url(settings.state_url)
            out["Redis memory, MiB"] = client.info("memory")["used_memory"] / 2**20
            client.close()
        engine.close()
    return out


def returning_users(engine, ratings) -> dict[str, float]:
    """Recommend latency of users who asked before, with no write since (every user once to
    warm up, then each once more, in another order): what item-kNN's kept long-term parts give."""
    users = [str(u) for u in ratings["user_id"].unique()]
    for user in users:
        engine.recommend(user, 10)
    order = np.random.default_rng(1).permutation(len(users))
    lat = time_each(lambda i: engine.recommend(users[order[i]], 10), len(users))
    p50, p99 = percentiles_ms(lat)
    return {"recommend p50 ms, returning users": p50, "recommend p99 ms, returning users": p99}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", default=None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--updates", type=int, default=2000, help="events per online-update measurement")
    parser.add_argument("--redis", default=None, help="an existing Redis (default: start a local one)")
    parser.add_argument("--updaters", default="", help="e.g. 1,2,4: also measure that many updater processes on "
                                                       "owner-sharded Redis streams (redis_updaters.py)")
    parser.add_argument("--stream-events", type=int, default=50_000, help="events the updaters apply per count")
    parser.add_argument("--only-updaters", action="store_true", help="skip the state comparison")
    parser.add_argument("--seeds", type=int, default=1, help="recommend latency measured this many times, each on "
                                                             "its own random users")
    args = parser.parse_args()
    ratings = read_ratings(args.movielens)
    movies = read_movies(args.movielens)
    print(f"# Redis state benchmark: {len(ratings):,} MovieLens ratings, {len(movies):,} movies; {machine()}\n")
    if args.updaters:
        with tempfile.TemporaryDirectory() as tmp:
            local = None if args.redis else LocalRedis(tmp)
            try:
                counts = [int(n) for n in args.updaters.split(",")]
                rows = scaling(args.redis or local.url, ratings, movies, counts, args.stream_events)  # type: ignore[union-attr]
            finally:
                if local:
                    local.stop()
        print(f"## {args.stream_events:,} events through owner-sharded Redis streams\n")
        print_table(HEADERS, rows)
        if args.only_updaters:
            return
    memory = bench(ratings, movies, args.requests, {}, args.updates, args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        local = None if args.redis else LocalRedis(tmp)
        url = args.redis or local.url  # type: ignore[union-attr]
        try:
            shared = bench(ratings, movies, args.requests, {"state_url": url, "state_namespace": "bench"}, args.updates,
                           args.seeds)
        finally:
            if local:
                local.stop()
    rows = [[metric, value, shared.get(metric, "-")] for metric, value in memory.items()]
    rows += [[metric, "-", value] for metric, value in shared.items() if metric not in memory]
    print_table(["metric", "in-memory state", "Redis state"], rows)


if __name__ == "__main__":
    main()
