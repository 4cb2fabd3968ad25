"""Next-item prediction on MovieLens: SASRec and GRU4Rec against item-kNN and popularity.

Protocol (per-user leave-last-out): each user's events are ordered by time; the last one is the
test item, the second-to-last the validation item, everything before is training data. Users
with fewer than three events only contribute training data. The sequence models hold their
training log's last event per user (= the validation item) out themselves for early stopping,
and ``--tune`` picks hyper-parameters on that validation NDCG@10 only; the test item is scored
once, for the final table. Items the user already rated are excluded from the ranking (nobody
rates a film twice on MovieLens), for every model alike.

Each model sees the same query for a test user: their latest training events, most recent
first, weighted ``event weight * exp(-position / position_decay)`` like the serving layer does;
item-kNN reads the latest ``query_len`` (20), the sequence models their ``max_len``.

Latency is one ``score(query, n_items)`` call at a time over the full catalogue (the top-n cut
is the serving layer's job and not included), after a warm-up.

Run:  PYTHONPATH=src python benchmarks/sequence.py [--data PATH] [--tune] [--threads 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from pulserec.config import DEFAULT_EVENT_WEIGHTS, Settings
from pulserec.ingest.movielens import read_ratings
from pulserec.models.base import Query, Recommender
from pulserec.models.interactions import Interactions
from pulserec.models.registry import build_model
from pulserec.models.sequence_base import next_item_ranks, ranking_metrics

K = 10


# -- split ---------------------------------------------------------------------------------------
@dataclass
class LeaveLastOut:
    """Training log plus each evaluated user's held-out validation and test items."""

    train: Interactions
    users: np.ndarray  # evaluated users
    validation_items: np.ndarray
    test_items: np.ndarray
    test_times: np.ndarray


def leave_last_out(data: Interactions, min_events: int = 3) -> LeaveLastOut:
    order = np.lexsort((data.timestamps, data.users))  # by user, then time; ties keep log order
    users = data.users[order]
    last_of_user = np.flatnonzero(np.r_[users[1:] != users[:-1], True])
    counts = np.bincount(users, minlength=data.n_users)
    last_of_user = last_of_user[counts[users[last_of_user]] >= min_events]
    test_rows, validation_rows = order[last_of_user], order[last_of_user - 1]
    train_mask = np.ones(len(data), dtype=bool)
    train_mask[test_rows] = False
    return LeaveLastOut(
        train=data.subset(train_mask),
        users=data.users[test_rows],
        validation_items=data.items[validation_rows],
        test_items=data.items[test_rows],
        test_times=data.timestamps[test_rows],
    )


# -- queries -------------------------------------------------------------------------------------
@dataclass
class UserHistory:
    """Each user's training events, most recent first."""

    items: list[np.ndarray]
    types: list[np.ndarray]
    timestamps: list[np.ndarray]
    weights: list[np.ndarray]

    @classmethod
    def of(cls, train: Interactions) -> UserHistory:
        order = np.lexsort((-np.arange(len(train)), -train.timestamps, train.users))
        bounds = np.cumsum(np.bincount(train.users[order], minlength=train.n_users))[:-1]
        split = lambda column: np.split(column[order], bounds)  # noqa: E731
        return cls(split(train.items), split(train.types), split(train.timestamps), split(train.weights))

    def query(self, user: int, length: int, now: float, n_items: int, position_decay: float) -> Query:
        weights = self.weights[user][:length] * np.exp(-np.arange(min(length, len(self.items[user]))) / position_decay)
        return Query(
            user=int(user),
            items=self.items[user][:length],
            weights=weights.astype(np.float32),
            types=tuple(self.types[user][:length]),
            timestamps=self.timestamps[user][:length],
            now=float(now),
            n_items=n_items,
        )


# -- metrics -------------------------------------------------------------------------------------
def mask_seen(scores: np.ndarray, history: UserHistory, users: np.ndarray) -> np.ndarray:
    rows = np.repeat(np.arange(len(users)), [len(history.items[u]) for u in users])
    scores[rows, np.concatenate([history.items[u] for u in users])] = -np.inf
    return scores


def score_all(model: Recommender, queries: Sequence[Query], n_items: int) -> np.ndarray:
    """Scores of every query (rows); batched where the model can, else one by one."""
    if hasattr(model, "score_batch"):
        return model.score_batch(queries, n_items)
    out = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
    for row, query in enumerate(queries):
        scores = model.score(query, n_items)
        if scores is not None:
            out[row] = scores
    return out


def latency_ms(model: Recommender, queries: Sequence[Query], n_items: int, n_requests: int) -> dict[str, float]:
    """p50/p99 of single score() calls, after a warm-up of 50, and the 1-minute load average
    (other processes on a shared machine show up in the tail)."""
    cycle = itertools.cycle(queries)
    for _ in range(50):
        model.score(next(cycle), n_items)
    times = np.empty(n_requests)
    for i in range(n_requests):
        query = next(cycle)
        started = time.perf_counter()
        model.score(query, n_items)
        times[i] = time.perf_counter() - started
    return {
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p99_ms": float(np.percentile(times, 99) * 1e3),
        "load1": os.getloadavg()[0],
    }


# -- runs ----------------------------------------------------------------------------------------
@dataclass
class Result:
    model: str
    params: dict[str, Any]
    train_s: float
    test: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    epochs: int | None = None


def fit(name: str, params: dict[str, Any], train: Interactions) -> tuple[Recommender, Result]:
    """Train one model; sequence models also report their best validation epoch."""
    model = build_model(name, **params)
    started = time.perf_counter()
    model.fit(train)
    result = Result(name, params, time.perf_counter() - started)
    fit_history = getattr(model, "history", None)
    if fit_history:
        best = max(fit_history, key=lambda r: r.validation.get(f"ndcg@{K}", -1.0))
        result.validation, result.epochs = best.validation, len(fit_history)
    return model, result


#: what `--tune` tries for each sequence model, on the validation item only; the first is the default
GRIDS: dict[str, list[dict[str, Any]]] = {
    "sasrec": [
        {"max_len": 50, "dim": 64, "n_layers": 2, "n_heads": 1, "dropout": 0.2},
        {"max_len": 100, "dim": 64, "n_layers": 2, "n_heads": 1, "dropout": 0.2},
        {"max_len": 50, "dim": 64, "n_layers": 2, "n_heads": 1, "dropout": 0.5},
        {"max_len": 50, "dim": 64, "n_layers": 2, "n_heads": 1, "dropout": 0.2, "event_features": False},
    ],
    "gru4rec": [
        {"max_len": 50, "dim": 64, "n_layers": 1, "dropout": 0.2},
        {"max_len": 50, "dim": 128, "n_layers": 1, "dropout": 0.2},
        {"max_len": 50, "dim": 64, "n_layers": 1, "dropout": 0.5},
        {"max_len": 50, "dim": 64, "n_layers": 1, "dropout": 0.2, "event_features": False},
    ],
}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="MovieLens directory (default: $PULSEREC_MOVIELENS or ../shared)")
    parser.add_argument("--models", default="sasrec,gru4rec,item_knn,popular")
    parser.add_argument("--tune", action="store_true", help="try GRIDS on the validation item, keep the best")
    parser.add_argument("--time-budget", type=float, default=150.0, help="training seconds per sequence model")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    settings = Settings()
    data = Interactions.from_frame(read_ratings(args.data), DEFAULT_EVENT_WEIGHTS)
    split = leave_last_out(data)
    history = UserHistory.of(split.train)
    n_items = split.train.n_items
    print(f"{len(data)} events, {data.n_users} users ({len(split.users)} evaluated), {n_items} items")

    results: list[Result] = []
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        candidates = GRIDS.get(name, [{}])
        candidates = candidates if args.tune else candidates[:1]
        common = {"max_epochs": args.max_epochs, "time_budget": args.time_budget} if name in GRIDS else {}
        best: tuple[Recommender, Result] | None = None
        for params in candidates:
            model, result = fit(name, {**params, **common}, split.train)
            if len(candidates) > 1:
                print(f"  {name} {params}: validation {result.validation} in {result.train_s:.0f} s")
            if best is None or result.validation.get(f"ndcg@{K}", 0) > best[1].validation.get(f"ndcg@{K}", 0):
                best = (model, result)
        assert best is not None
        model, result = best
        query_len = settings.query_len if name == "item_knn" else int(result.params.get("max_len", 1))
        queries = [
            history.query(u, query_len, now, n_items, settings.position_decay)
            for u, now in zip(split.users, split.test_times)
        ]
        scores = mask_seen(score_all(model, queries, n_items), history, split.users)
        result.test = ranking_metrics(next_item_ranks(scores, split.test_items), K)
        if args.latency_requests:
            result.latency = latency_ms(model, queries, n_items, args.latency_requests)
        results.append(result)
        print(f"{name}: test {result.test}, trained in {result.train_s:.1f} s, latency {result.latency}")

    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([asdict(r) for r in results], fh, indent=2)


def table(results: Sequence[Result]) -> str:
    """Markdown table of the results."""
    lines = [
        f"| model | HR@{K} | NDCG@{K} | val NDCG@{K} | epochs | train (s) | p50 (ms) | p99 (ms) | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        val = r.validation.get(f"ndcg@{K}")
        lines.append(
            f"| {r.model} | {r.test[f'hr@{K}']:.4f} | {r.test[f'ndcg@{K}']:.4f} | "
            f"{'' if val is None else f'{val:.4f}'} | {r.epochs or ''} | {r.train_s:.1f} | "
            f"{r.latency.get('p50_ms', float('nan')):.2f} | {r.latency.get('p99_ms', float('nan')):.2f} | "
            f"{r.latency.get('load1', float('nan')):.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
