"""The dashboard's history on MovieLens latest-small (100,837 ratings): what its queries cost to
read (store/history.py), and what its indexes cost SQLite's share of a bulk import.

Usage: flock /tmp/bench.lock python benchmarks/dashboard_history.py [--movielens DIR] [--repeats 3]
Prints each query's times (ms) with and without the indexes, and paired append times (s)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import machine
from pulserec.ingest.movielens import read_movies, read_ratings
from pulserec.store import SQLiteStore
from pulserec.store.feedback import FeedbackStore
from pulserec.store import history as history_module
from pulserec.store.history import History

DAY = 86_400.0


#: The indexes History creates (store/history.py), switched off for the runs without them.
INDEXES = history_module._INDEXES


def filled(folder: Path, ratings, movies, indexed: bool) -> tuple[SQLiteStore, History, float]:
    """A store with the catalogue, then the ratings appended (timed) after History made its indexes or not."""
    store = SQLiteStore(folder / "pulserec.db")
    FeedbackStore(store)
    store.upsert_items(movies)
    history_module._INDEXES = INDEXES if indexed else ""
    history = History(store)
    start = time.perf_counter()
    store.append_frame(ratings)
    return store, history, time.perf_counter() - start


def queries(history: History) -> dict[str, object]:
    newest = history.newest_ts()
    top = history.items("events", True, 0, 1)["rows"][0]["item_id"]
    return {"history, 7 days per hour": lambda: history.activity(newest - 7 * DAY, newest + 1),
            "history, 90 days per day": lambda: history.activity(newest - 90 * DAY, newest + 1, "day"),
            "users, page 1 by events": lambda: history.users(),
            "items, page 1 by events": lambda: history.items(),
            "item activity (most popular item)": lambda: history.item_activity(top)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--movielens", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratings, movies = read_ratings(args.movielens), read_movies(args.movielens)
    print(machine())
    appends: dict[bool, list[float]] = {False: [], True: []}
    reads: dict[tuple[bool, str], list[float]] = {}
    for _ in range(args.repeats):
        for indexed in (False, True):  # paired: each repeat measures both on the same machine state
            with tempfile.TemporaryDirectory() as folder:
                store, history, took = filled(Path(folder), ratings, movies, indexed)
                appends[indexed].append(took)
                for name, run in queries(history).items():
                    start = time.perf_counter()
                    run()
                    reads.setdefault((indexed, name), []).append((time.perf_counter() - start) * 1000)
                history.close()
                store.close()
    print(f"append {len(ratings):,} events, s: without indexes {[round(t, 3) for t in appends[False]]}, "
          f"with {[round(t, 3) for t in appends[True]]}")
    for (indexed, name), times in sorted(reads.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{name:36s} {'with' if indexed else 'without':7s} indexes: {[round(t, 1) for t in times]} ms")


if __name__ == "__main__":
    main()
