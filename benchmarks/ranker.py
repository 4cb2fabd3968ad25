"""Ranker (issue 5): does the learned two-stage ranker beat the default blend, and how fast is it?

    PYTHONPATH=src python benchmarks/ranker.py [--users 300 --items 400 --events 30000 --evaluations 2000]

Synthetic shop (`pulserec.ingest.synthetic.generate`), time split: the ranker is trained on the
first `--train-share` of the log (negative sampling over item-kNN + trending recall) and then
frozen. The rest of the log is streamed through the online state (as in `replay --mode online`);
before sampled first-time (user, item) events, the top-10 of each strategy is scored against
the event's item (next-event prediction; seen items excluded, as served). Both strategies get
the event's device/location as request context; only the ranker uses it ("ranker, no context"
drops it). Then the in-process latency of single `recommend` calls."""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from _common import machine, percentiles_ms, print_table
from pulserec.config import Settings
from pulserec.events import events_from_frame
from pulserec.ingest.importer import normalise_events
from pulserec.ingest.synthetic import generate
from pulserec.models.ranker import Ranker
from pulserec.models.ranker_training import TrainingOptions, prepare_log, train_ranking_model
from pulserec.online.state import OnlineState
from pulserec.recommend.service import DEFAULT_STRATEGY, Filters, RecommendationService

K = 10
ARMS = {"default blend": (DEFAULT_STRATEGY, True), "ranker": ("ranker", True), "ranker, no context": ("ranker", False)}


def gain(ranked: list[str], target: str) -> tuple[float, float]:
    """(hit, NDCG) of one next-event prediction with a single relevant item."""
    if target not in ranked:
        return 0.0, 0.0
    return 1.0, 1.0 / math.log2(ranked.index(target) + 2)


def paired_ci(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, rounds: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval of mean(a - b) over paired evaluations."""
    diff = a - b
    means = diff[rng.integers(0, len(diff), (rounds, len(diff)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--train-share", type=float, default=0.8)
    parser.add_argument("--evaluations", type=int, default=2000)
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=TrainingOptions.rounds, help="boosting rounds")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    settings = Settings()
    data = generate(n_users=args.users, n_items=args.items, n_events=args.events, seed=args.seed)
    log = prepare_log(normalise_events(data.events, settings.event_weights)[0])
    cut = int(len(log) * args.train_share)
    train, test = log.iloc[:cut], log.iloc[cut:]
    print(f"# ranker benchmark: synthetic shop, {args.users} users, {args.items} items, {len(log):,} events "
          f"(train {len(train):,} / test {len(test):,}); {machine()}\n")

    started = time.perf_counter()
    model = train_ranking_model(train, data.items, settings, options=TrainingOptions(rounds=args.rounds, seed=args.seed))
    train_seconds = time.perf_counter() - started

    state = OnlineState(settings)
    for record in data.items:
        state.catalog.upsert(record)
    state.apply_frame(train)
    service = RecommendationService(state, settings)
    ranker = Ranker({"item_knn": service.item_knn, "trending": service.trending}, state, model)
    service.register(ranker)

    first_time = test["item_id"].notna().to_numpy() & ~log.duplicated(["owner", "item_id"]).to_numpy()[cut:]
    rng = np.random.default_rng(args.seed)
    chosen = set(rng.choice(np.flatnonzero(first_time), min(args.evaluations, int(first_time.sum())), replace=False).tolist())
    results = {arm: ([], []) for arm in ARMS}
    recalled = []
    for pos, event in enumerate(events_from_frame(test)):
        if pos in chosen:
            context = event.context or {}
            for arm, (strategy, with_context) in ARMS.items():
                answer = service.recommend(event.owner, K, Filters(), strategy, context if with_context else {})
                hit, ndcg = gain([r.item_id for r in answer.items], event.item_id)
                results[arm][0].append(hit)
                results[arm][1].append(ndcg)
            found, _ = ranker.candidates(service.query_for(event.owner, context), len(state.catalog))
            recalled.append(state.catalog.item_ids.get(event.item_id) in set(found.items.tolist()))
        state.apply(event, int(test["seq"].iloc[pos]))

    base_hits, base_ndcg = (np.array(v) for v in results["default blend"])
    rows = []
    for arm, (hits, ndcgs) in results.items():
        hits, ndcgs = np.array(hits), np.array(ndcgs)
        low, high = paired_ci(ndcgs, base_ndcg, rng)
        rows.append([arm, len(hits), float(hits.mean()), float(ndcgs.mean()),
                     "-" if arm == "default blend" else f"{ndcgs.mean() - base_ndcg.mean():+.4f} [{low:+.4f}, {high:+.4f}]"])
    print_table(["strategy", "events", f"HitRate@{K}", f"NDCG@{K}", "NDCG vs blend (95% CI)"], rows)
    print(f"\nrecall: the event's item is among the ranker's candidates in {np.mean(recalled):.1%} of evaluations "
          f"(depth {ranker.depth} per source)")

    strategies = (DEFAULT_STRATEGY, "ranker")
    owners = log["owner"].unique()
    picks = rng.choice(owners, args.latency_requests)
    context = {"device": "mobile", "location": "Berlin"}
    for strategy in strategies:  # warm-up
        service.recommend(str(picks[0]), K, Filters(), strategy, context)
    # Interleaved, request by request, so both strategies see the same load from other processes.
    seconds = {s: np.empty(len(picks)) for s in strategies}
    for i, owner in enumerate(picks):
        for strategy in strategies:
            began = time.perf_counter()
            service.recommend(str(owner), K, Filters(), strategy, context)
            seconds[strategy][i] = time.perf_counter() - began
    print()
    print_table(["strategy", "recommend p50 ms", "recommend p99 ms"], [[s, *percentiles_ms(seconds[s])] for s in strategies])
    print(f"(interleaved single requests, {len(picks)} each; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    stats = model.stats
    print(f"\ntraining: {stats['queries']:,} queries, {stats['rows']:,} rows, recall hit rate {stats['recall_hit_rate']:.1%}, "
          f"{train_seconds:.1f} s ({model.learner.kind})")
    top = list(model.feature_importance.items())[:8]
    print("feature importance (gain, top 8): " + ", ".join(f"{name} {value:,.0f}" for name, value in top))


if __name__ == "__main__":
    main()
