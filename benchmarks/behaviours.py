"""What social ties, declared attributes and an active search cost per recommend request (issue 14).

    python benchmarks/behaviours.py [--movielens PATH] [--requests 300] [--rounds 3] [--ties 10]

MovieLens latest-small in one in-process engine, with planted behaviours: every rated user
declares attributes (age band, country, plan), a third of them follow `--ties` random others,
another third has just searched (a `search` event with a word of a movie title), and new users
with attributes but no events arrive (the segment cold start) beside new users with nothing.
Each group's recommend latency (the default strategy, n=10) is timed in rounds, the groups
taking turns request by request, so that load on a shared box falls on all of them alike; the
report gives each group's p50/p99 per round and its p50 minus the plain users' p50.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from _common import machine, percentiles_ms, print_table
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.ingest.movielens import read_movies, read_ratings

ATTRIBUTES = {"age_band": ["18-24", "25-34", "35-44", "45-54", "55+"], "country": ["DE", "FR", "US", "IT", "ES"],
              "plan": ["free", "pro"]}


def attrs_for(rng: np.random.Generator) -> dict[str, str]:
    return {name: str(rng.choice(values)) for name, values in ATTRIBUTES.items()}


def plant(engine: Engine, users: list[str], words: list[str], ties: int, new_users: int,
          rng: np.random.Generator) -> dict[str, list[str]]:
    """Attributes for everyone, ties, searches and new users; the groups of user ids to time."""
    engine.put_users([(u, attrs_for(rng), None) for u in users])
    order = rng.permutation(users).tolist()
    third = len(order) // 3
    plain, social, searching = order[:third], order[third:2 * third], order[2 * third:]
    engine.follow_many((u, str(other), 1.0) for u in social for other in rng.choice(users, ties, replace=False)
                       if other != u)
    now = engine.clock()
    engine.ingest([Event(f"q-{u}", u, None, "search", now + 1.0, query=str(rng.choice(words))) for u in searching])
    cold = [f"new-{k}" for k in range(new_users)]
    engine.put_users([(u, attrs_for(rng), None) for u in cold])
    return {"plain (history, no ties, no search)": plain, "with ties": social, "active search": searching,
            "attributes, no events": cold, "nothing at all (new, no attributes)": [f"anon-{k}" for k in range(new_users)]}


def measure(engine: Engine, groups: dict[str, list[str]], requests: int, rounds: int,
            rng: np.random.Generator) -> dict[str, list[tuple[float, float]]]:
    """(p50, p99) ms per group per round; within a round the groups take turns request by
    request, so that a burst of load on the box falls on all of them alike."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in groups}
    for users in groups.values():  # warm-up: caches (segments, lexical index) filled once
        for user in users[:20]:
            engine.recommend(user, 10)
    for _ in range(rounds):
        picks = {name: rng.choice(users, requests) for name, users in groups.items()}
        seconds = {name: np.empty(requests) for name in groups}
        for i in range(requests):
            for name in groups:
                start = time.perf_counter()
                engine.recommend(str(picks[name][i]), 10)
                seconds[name][i] = time.perf_counter() - start
        for name in groups:
            out[name].append(percentiles_ms(seconds[name]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movielens", default=None, help="MovieLens directory (default: $PULSEREC_MOVIELENS)")
    parser.add_argument("--requests", type=int, default=300, help="timed requests per group and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ties", type=int, default=10, help="users each social user follows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import os

    path = args.movielens or os.environ.get("PULSEREC_MOVIELENS", "/work/shared/data/ml-latest-small")
    ratings, movies = read_ratings(path), read_movies(path)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Settings.load(tmp))
        try:
            engine.put_items(movies)
            engine.ingest_frame(ratings)
            users = sorted(ratings["user_id"].astype(str).unique())
            words = sorted({w for m in movies for w in (m.title or "").lower().split() if w.isalpha() and len(w) > 4})
            groups = plant(engine, users, words, args.ties, len(users) // 3, rng)
            started = time.strftime("%H:%M:%S")
            results = measure(engine, groups, args.requests, args.rounds, rng)
        finally:
            engine.close()
    base = [p50 for p50, _ in results["plain (history, no ties, no search)"]]
    rows = []
    for name, per_round in results.items():
        p50s, p99s = [p for p, _ in per_round], [p for _, p in per_round]
        extra = [p - b for p, b in zip(p50s, base)]
        rows.append([name, len(groups[name]), " / ".join(f"{p:.2f}" for p in p50s), " / ".join(f"{p:.1f}" for p in p99s),
                     f"{min(extra):+.2f} .. {max(extra):+.2f}"])
    print(f"{machine()}; {args.rounds} rounds x {args.requests} requests per group from {started}; load {os.getloadavg()}")
    print_table(["group", "users", "recommend p50 ms (per round)", "p99 ms (per round)", "p50 - plain's, ms"], rows)


if __name__ == "__main__":
    main()
