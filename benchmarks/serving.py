"""Serving speed on MovieLens latest-small: recommendation latency, online update and import throughput.

    python benchmarks/serving.py [--movielens PATH] [--requests 2000] [--strategy NAME[,NAME...]]

pulserec is measured in-process next to rtrec (a real-time recommender library with online
updates) on the same data in the same run. Targets (issue 2): p50 < 2 ms, p99 < 10 ms,
online updates >= 20,000 events/s, bulk import >= 100,000 events/s."""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from _common import machine, percentiles_ms, print_table, serving_latency, time_each
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.ingest.movielens import read_movies, read_ratings


def recommend_label(metric: str, strategy: str | None, strategies: list[str | None]) -> str:
    """`metric` as reported: named after its strategy when several are measured in one run."""
    return metric if len(strategies) == 1 or not metric.startswith("recommend") else f"{metric} ({strategy or 'default'})"


def bench_pulserec(ratings, movies, requests: int, strategies: list[str | None]) -> dict[str, float]:
    """Every figure once, recommendations once per strategy (None: the engine's default)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Settings.load(tmp))
        engine.put_items(movies)
        start = time.perf_counter()
        engine.ingest_frame(ratings)
        out["bulk import (store + state), events/s"] = len(ratings) / (time.perf_counter() - start)

        start = time.perf_counter()
        Engine(Settings.load(tmp)).close()
        out["restart: rebuild state from log, s"] = time.perf_counter() - start

        for k, strategy in enumerate(strategies):
            latency = serving_latency(engine, ratings, requests, strategy=strategy)
            out.update({recommend_label(metric, strategy, strategies): value for metric, value in latency.items()
                        if k == 0 or metric.startswith("recommend")})
        rng = np.random.default_rng(0)
        picks = rng.choice(ratings["user_id"].unique(), requests)
        items = ratings["item_id"].unique()

        # Online updates: the per-event path that runs before an API acknowledgement.
        n = 20_000
        live = [Event(f"live-{i}", str(picks[i % requests]), str(items[rng.integers(len(items))]), "view",
                      1_537_800_000.0 + i) for i in range(n)]
        state = engine.state
        start = time.perf_counter()
        for event in live[: n // 2]:
            state.apply(event)
        out["online update (state only), events/s"] = (n // 2) / (time.perf_counter() - start)
        start = time.perf_counter()
        for k in range(n // 2, n, 100):
            engine.ingest(live[k : k + 100])
        out["online ingest (store + state, batches of 100), events/s"] = (n // 2) / (time.perf_counter() - start)
        start = time.perf_counter()
        for event in live[n // 2 : n // 2 + 2000]:
            engine.ingest([event._replace(event_id=event.event_id + "-single")])
        out["online ingest (store + state, one event per call), events/s"] = 2000 / (time.perf_counter() - start)
        engine.close()
    return out


def bench_rtrec(ratings, requests: int) -> dict[str, float] | None:
    try:
        from rtrec.models import SLIM
    except ImportError:
        return None
    out: dict[str, float] = {}
    model = SLIM()
    rows = list(zip(ratings["user_id"], ratings["item_id"], ratings["ts"], ratings["value"]))
    start = time.perf_counter()
    model.fit(rows, progress_bar=False)
    out["bulk import (store + state), events/s"] = len(rows) / (time.perf_counter() - start)
    users = ratings["user_id"].unique()
    rng = np.random.default_rng(0)
    picks = rng.choice(users, requests)
    for i in range(20):
        model.recommend(picks[i], top_k=10)
    lat = time_each(lambda i: model.recommend(picks[i], top_k=10), min(requests, 500))
    out["recommend p50 ms"], out["recommend p99 ms"] = percentiles_ms(lat)
    items = ratings["item_id"].unique()
    sim = time_each(lambda i: model.similar_items(items[i % len(items)], top_k=10), min(requests, 500))
    out["similar p50 ms"], out["similar p99 ms"] = percentiles_ms(sim)
    live = [(str(picks[i % requests]), str(items[rng.integers(len(items))]), 1_537_800_000.0 + i, 1.0) for i in range(500)]
    start = time.perf_counter()
    for row in live:
        model.fit([row], progress_bar=False)
    out["online update (state only), events/s"] = len(live) / (time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", default=None)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--strategy", default=None,
                        help="models to recommend with, comma-separated, each measured in turn (default: the engine's default)")
    args = parser.parse_args()
    ratings = read_ratings(args.movielens)
    movies = read_movies(args.movielens)
    strategies: list[str | None] = [None if s == "default" else s for s in args.strategy.split(",")] if args.strategy else [None]
    print(f"# serving benchmark: {len(ratings):,} MovieLens ratings, {len(movies):,} movies, "
          f"strategy {args.strategy or 'default'}; {machine()}\n")
    ours = bench_pulserec(ratings, movies, args.requests, strategies)
    peer = bench_rtrec(ratings, args.requests)
    rows = []
    for metric, value in ours.items():
        other = (peer or {}).get(metric)
        if other is None:
            rows.append([metric, value, "-", "-"])
            continue
        lower_is_better = "ms" in metric
        ratio = other / value if lower_is_better else value / other
        rows.append([metric, value, other, f"{ratio:,.1f}x {'faster' if ratio >= 1 else 'slower'}"])
    print_table(["metric", "pulserec", "rtrec SLIM", "pulserec vs rtrec"], rows)
    targets = {
        "recommend p50 ms": ("<", 2.0), "recommend p99 ms": ("<", 10.0),
        "online update (state only), events/s": (">=", 20_000), "bulk import (store + state), events/s": (">=", 100_000),
    }
    print()
    for metric, (op, bound) in targets.items():
        value = ours[recommend_label(metric, strategies[0], strategies)]
        ok = value < bound if op == "<" else value >= bound
        print(f"target {metric} {op} {bound:,}: {value:,.2f} -> {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
