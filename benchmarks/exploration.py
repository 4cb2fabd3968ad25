"""Exploration on the synthetic shop with new items arriving (issue 15.3): time to first click
of the new items, and what exploration costs in CTR.

A real engine (SQLite in a temporary directory) is warmed with the shop's log; then, in rounds,
a random user gets 10 recommendations (the default strategy, `exploration` = the setting under
test), the slate is recorded as an impression, and the user clicks each shown item with a
hidden probability: base CTR x 3 for their two favourite categories x the item's appeal (Beta(2,
5), drawn once per item). Clicks are sent as events carrying the recommendation id, so the
engine learns from them as in production. Every `--arrive-every` rounds `--arrivals` new items
are PUT (no events). Per setting and seed: CTR over all slots and over the organic ones, the
share of new items clicked at least once, their median rounds from arrival to first click
(censored at the end: unclicked items count as never), and their share of impressions.

    flock /tmp/bench.lock python benchmarks/exploration.py [--rounds 600] [--seeds 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid

import numpy as np

from _common import print_table
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.ingest.synthetic import CATEGORIES, as_events, generate
from pulserec.recommend.filters import Filters
from pulserec.records import ItemRecord

BASE_CTR = 0.05


def run(share: float, seed: int, rounds: int, arrive_every: int, arrivals: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    shop = generate(n_users=200, n_items=300, n_events=6000, seed=seed)
    favourites = {u: set(f.split("|")) for u, f in zip(shop.users["user_id"], shop.users["favourite_categories"])}
    users = list(favourites)
    appeal = {r.item_id: float(rng.beta(2, 5)) for r in shop.items}
    category = {r.item_id: r.category for r in shop.items}
    engine = Engine(Settings.load(tempfile.mkdtemp(), exploration_max_impressions=20, auto_train_min_events=0))
    try:
        engine.put_items(list(shop.items))
        engine.ingest(as_events(shop.events))
        clock = float(shop.events["ts"].max())
        arrived: dict[str, int] = {}
        first_click: dict[str, int] = {}
        shown = clicks = organic_shown = organic_clicks = new_shown = 0
        for step in range(rounds):
            clock += 30.0
            if step % arrive_every == 0:
                fresh = [ItemRecord(f"new-{seed}-{step}-{k}", title=f"New {k}", category=str(rng.choice(list(CATEGORIES))),
                                    created_ts=clock) for k in range(arrivals)]
                engine.put_items(fresh)
                for record in fresh:
                    arrived[record.item_id], appeal[record.item_id], category[record.item_id] = step, float(rng.beta(2, 5)), record.category
            user = users[int(rng.integers(len(users)))]
            answer = engine.recommend(user, 10, Filters(exploration=share))
            rec_id = uuid.uuid4().hex
            items = [r.item_id for r in answer.items]
            slots = [(r.item_id, "exploration", answer.strategy) for r in answer.items if r.explored]
            engine.feedback.add_impression(rec_id, engine.user_key(user), None, answer.strategy, None, None, items, clock, slots)
            events = []
            for r in answer.items:
                p = min(1.0, BASE_CTR * (3.0 if category.get(r.item_id) in favourites[user] else 1.0) * appeal.get(r.item_id, 0.0) * 4)
                hit = rng.random() < p
                shown, clicks = shown + 1, clicks + hit
                if not r.explored:
                    organic_shown, organic_clicks = organic_shown + 1, organic_clicks + hit
                if r.item_id in arrived:
                    new_shown += 1
                    if hit:
                        first_click.setdefault(r.item_id, step)
                if hit:
                    events.append(Event(uuid.uuid4().hex, user, r.item_id, "click", clock, rec_id=rec_id))
            if events:
                engine.ingest(events)
            engine.service.exposure.refresh(force=True)  # rounds are faster than its 1 s refresh
        waits = np.array([first_click.get(i, rounds) - a for i, a in arrived.items()], dtype=float)
        return {"ctr": clicks / shown, "organic_ctr": organic_clicks / max(organic_shown, 1),
                "new_clicked": len(first_click) / len(arrived), "median_wait": float(np.median(waits)),
                "new_share": new_shown / shown, "new_items": len(arrived)}
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    parser.add_argument("--arrive-every", type=int, default=40)
    parser.add_argument("--arrivals", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for share in args.shares:
        results = []
        for seed in args.seeds:
            start = time.perf_counter()
            results.append(run(share, seed, args.rounds, args.arrive_every, args.arrivals))
            print(f"exploration={share} seed={seed}: {results[-1]} ({time.perf_counter() - start:.0f} s)", flush=True)
        cell = lambda key, fmt: " / ".join(fmt.format(r[key]) for r in results)  # noqa: E731 - one per seed
        rows.append([share, cell("ctr", "{:.4f}"), cell("organic_ctr", "{:.4f}"), cell("new_clicked", "{:.2f}"),
                     cell("median_wait", "{:.0f}"), cell("new_share", "{:.3f}"), cell("new_items", "{}")])
    print(f"{args.rounds} rounds, {args.arrivals} new items every {args.arrive_every} rounds; one value per seed {args.seeds}")
    print_table(["exploration", "CTR", "organic CTR", "new items clicked", "median rounds to first click",
                 "new items' share of slots", "new items"], rows)


if __name__ == "__main__":
    main()
