"""What the HTTP layer costs per route, without a socket: the app called as ASGI with a prepared
scope, beside the same engine call made directly, on an imported data dir.

    PYTHONPATH=<tree>/src python benchmarks/asgi_routes.py DATA_DIR [--movielens PATH] [--kinds K,..] [--reps 400]

Per kind and round: CPU ms per call (`time.process_time`, robust to other processes on a shared
box) of the ASGI call and of the direct engine call (`recommend` with strategy item_knn, `similar`,
`profile`; `events` and `health` have no direct twin). The difference is the framework's share:
middleware, routing, dependencies, parameter parsing, rendering. No lifespan runs (no background
tasks); the collector is off during the rounds, as `pulserec serve` has frozen the start's objects.
It uses only `Settings`, `Engine` and `create_app`, so it runs on older trees too (issue 11's
before/after, docs/benchmarks.md). `events` writes to DATA_DIR: give it a copy."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import time
from pathlib import Path

import pandas as pd

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.app import create_app

KINDS = ("recommend", "similar", "profile", "events", "health")


def sample_ids(movielens: Path, reps: int, seed: int = 1) -> tuple[list[str], list[str]]:
    """2 x `reps` users, distinct while there are enough (two halves: see `measure`), and `reps`
    of the 2,000 most popular items, as benchmarks/load.py draws its ids."""
    ratings = pd.read_csv(movielens / "ratings.csv", dtype={"userId": str, "movieId": str})
    users, items = sorted(ratings["userId"].unique().tolist()), ratings["movieId"].value_counts().index[:2000].tolist()
    rng = random.Random(seed)
    drawn = rng.sample(users, min(2 * reps, len(users)))
    drawn += [rng.choice(users) for _ in range(2 * reps - len(drawn))]
    return drawn, [rng.choice(items) for _ in range(reps)]


def scope(method: str, path: str, query: bytes = b"", body: bytes = b"") -> dict:
    """The scope uvicorn builds for a plain HTTP/1.1 request."""
    headers = [(b"host", b"127.0.0.1:8000")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
            "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http", "method": method,
            "root_path": "", "path": path, "raw_path": path.encode(), "query_string": query, "headers": headers, "state": {}}


class Routes:
    """The requests of each kind (load.py's), their ASGI call and their direct engine call."""

    def __init__(self, engine: Engine, users: list[str], items: list[str]) -> None:
        self.engine, self.app, self.items = engine, create_app(engine), items
        self.halves = users[:len(items)], users[len(items):]
        self.users, self.others = self.halves
        rng = random.Random(2)
        self.bodies = [json.dumps({"events": [{"user_id": rng.choice(users), "item_id": rng.choice(items),
                                               "type": rng.choice(("view", "click", "like"))}
                                              for _ in range(rng.randint(1, 5))]}).encode() for _ in items]

    def swap(self, round_: int) -> None:
        """The ASGI calls take one half of the users, the direct calls the other, alternating by
        round: a user's first request (cold per-user caches) is in neither pass more than the other."""
        self.users, self.others = self.halves[round_ % 2], self.halves[1 - round_ % 2]

    def request(self, kind: str, i: int) -> tuple[dict, bytes]:
        if kind == "recommend":
            return scope("GET", f"/users/{self.users[i]}/recommendations", b"n=10&strategy=item_knn"), b""
        if kind == "similar":
            return scope("GET", f"/items/{self.items[i]}/similar", b"n=10"), b""
        if kind == "profile":
            return scope("GET", f"/users/{self.users[i]}/profile"), b""
        if kind == "health":
            return scope("GET", "/health"), b""
        return scope("POST", "/events", body=self.bodies[i]), self.bodies[i]

    def direct(self, kind: str, i: int) -> None:
        if kind == "recommend":
            self.engine.recommend(self.others[i], 10, strategy="item_knn")
        elif kind == "similar":
            self.engine.similar(self.items[i], 10)
        elif kind == "profile":
            self.engine.profile(self.others[i])

    async def asgi(self, kind: str, i: int) -> None:
        request, body = self.request(kind, i)
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await self.app(request, receive, send)
        if sent[0]["status"] >= 300:
            raise RuntimeError(f"{kind}: {sent[0]['status']} {sent[1].get('body', b'')[:200]!r}")


async def measure(routes: Routes, kinds: list[str], reps: int, rounds: int) -> None:
    for kind in kinds:  # warm-up: first-call costs (FastAPI builds its route contexts lazily)
        for i in range(min(20, reps)):
            await routes.asgi(kind, i)
            routes.direct(kind, i)
    for round_ in range(rounds):
        routes.swap(round_)
        row: dict[str, dict[str, float]] = {}
        for kind in kinds:
            started = time.process_time()
            for i in range(reps):
                await routes.asgi(kind, i)
            row[kind] = {"asgi_ms": round((time.process_time() - started) / reps * 1e3, 3)}
            if kind in ("recommend", "similar", "profile"):
                started = time.process_time()
                for i in range(reps):
                    routes.direct(kind, i)
                row[kind]["direct_ms"] = round((time.process_time() - started) / reps * 1e3, 3)
        print(json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--movielens", type=Path, default=Path("/work/shared/data/ml-latest-small"))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kinds = args.kinds.split(",")
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")
    users, items = sample_ids(args.movielens, args.reps)
    engine = Engine(Settings.load(args.data_dir))
    try:
        try:
            import uvloop  # what `pulserec serve` runs on

            uvloop.install()
        except ImportError:
            pass
        gc.disable()
        asyncio.run(measure(Routes(engine, users, items), kinds, args.reps, args.rounds))
    finally:
        engine.close()


if __name__ == "__main__":
    main()
