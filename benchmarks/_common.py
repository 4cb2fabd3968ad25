"""Helpers shared by the benchmark scripts: timing, percentiles, table printing, data paths."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np


def percentiles_ms(seconds: list[float] | np.ndarray) -> tuple[float, float]:
    values = np.asarray(seconds) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def time_each(fn: Callable[[int], object], n: int, clock: Callable[[], float] = time.perf_counter) -> np.ndarray:
    """Seconds each of n calls took by `clock` (time.thread_time: the CPU time of this thread)."""
    out = np.empty(n)
    for i in range(n):
        start = clock()
        fn(i)
        out[i] = clock() - start
    return out


@contextmanager
def stopwatch(label: str, results: dict[str, float]):
    start = time.perf_counter()
    yield
    results[label] = time.perf_counter() - start


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[f"{c:,.3f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for k, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def serving_latency(engine, ratings, requests: int, seed: int = 0, strategy: str | None = None) -> dict[str, float]:
    """In-process recommend and similar-items latency (p50/p99, ms) for random MovieLens users/items;
    `strategy` None is the engine's default."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(ratings["user_id"].unique(), requests)
    for i in range(50):  # warm-up
        engine.recommend(str(picks[i % requests]), 10, strategy=strategy)
    out: dict[str, float] = {}
    lat = time_each(lambda i: engine.recommend(str(picks[i]), 10, strategy=strategy), requests)
    out["recommend p50 ms"], out["recommend p99 ms"] = percentiles_ms(lat)
    items = ratings["item_id"].unique()
    sim = time_each(lambda i: engine.similar(str(items[i % len(items)]), 10), requests)
    out["similar p50 ms"], out["similar p99 ms"] = percentiles_ms(sim)
    return out
