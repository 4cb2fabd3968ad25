"""What carries signal on the per-user random split that EASE misses (issue 18), on VALIDATION.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src nice -n 19 python benchmarks/random_candidates.py \
        [--head-fraction 0.6] [--test] {context,recent,edlae}

The random split's training part (accuracy.SPLITS) is carved again into a random 75/25
validation split (`--test`: the test part instead, for settings fixed beforehand on validation);
every figure is NDCG@10 over its held-out users, asked with the served query
(evaluation/evaluate.Histories), training items excluded.

* context: time-context popularity, what was taken around THIS user's own active times: the
  user's training events binned by day, smoothed by an exp(-|dt| / width) kernel, against the
  log's item x day counts (each day's row divided by its total^gamma, the result by the item's
  count^beta); alone and added (weight w, normalised) to the time-local EASE.
* recent: the time-local EASE's `recent_weight` (models/ease.py) on the three validation targets
  auto learns on (evaluation/split.targets_split of the training part), per history bucket.
* edlae: EASE's L2 as lambda + p / (1 - p) * diag(G) (Steck 2020, emphasised denoising) over the
  time-local Gram matrix, and plain lambda values."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.signal
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import SPLITS  # noqa: E402

from pulserec.config import DEFAULT_EVENT_WEIGHTS  # noqa: E402
from pulserec.evaluation.evaluate import Histories, held_out_users, relevant_of, score_queries, top_k  # noqa: E402
from pulserec.evaluation.metrics import per_user_ndcg  # noqa: E402
from pulserec.evaluation.split import Split, make_split, targets_split, validation_split  # noqa: E402
from pulserec.ingest.movielens import read_movies, read_ratings  # noqa: E402
from pulserec.models.blend import normalised  # noqa: E402
from pulserec.models.ease import ease_dense  # noqa: E402
from pulserec.models.ease_local import TimeLocalEASE, time_local_gram  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.online.catalog import Catalog  # noqa: E402

DAY = 86_400.0


def context_scores(train: Interactions, users: np.ndarray, width_days: float, beta: float, gamma: float) -> np.ndarray:
    """(users x items) time-context popularity (module docstring), vectorised: day bins, one FFT
    convolution of the users' activity rows, one sparse product with the item x day counts."""
    days = ((train.timestamps - train.timestamps.min()) // DAY).astype(np.int64)
    n_days = int(days.max()) + 1
    counts = sp.csr_matrix((np.ones(len(days), np.float32), (days, train.items)), shape=(n_days, train.n_items))
    totals = np.asarray(counts.sum(axis=1)).ravel()
    counts = sp.diags((1.0 / np.maximum(totals, 1.0) ** gamma).astype(np.float32)) @ counts
    active = sp.csr_matrix((np.ones(len(days), np.float32), (train.users, days)), shape=(train.n_users, n_days))[users]
    reach = int(min(n_days, np.ceil(8 * width_days)))
    kernel = np.exp(-np.abs(np.arange(-reach, reach + 1)) / width_days)
    smoothed = np.maximum(scipy.signal.fftconvolve(active.toarray(), kernel[None, :], mode="same", axes=1), 0.0)
    scores = np.asarray((counts.T @ smoothed.astype(np.float32).T).T, dtype=np.float32)
    return scores / np.maximum(np.bincount(train.items, minlength=train.n_items), 1).astype(np.float32) ** beta


class Lab:
    """One split's held-out users, their served queries, seen items and relevant items."""

    def __init__(self, split: Split, catalog: Catalog) -> None:
        self.split, self.catalog = split, catalog
        self.users = held_out_users(split)
        histories = Histories(split.train)
        self.queries = [histories.query(int(u)) for u in self.users]
        self.seen = split.train.to_csr()[self.users]
        self.relevant = relevant_of(split, self.users)

    def ndcg(self, scores: np.ndarray) -> np.ndarray:
        return per_user_ndcg(top_k(scores, 10, self.seen), self.relevant, 10)

    def ease_local(self, **params) -> tuple[TimeLocalEASE, np.ndarray]:
        model = TimeLocalEASE(**params).fit(self.split.train, self.catalog)
        return model, score_queries(model, self.queries, self.split.train.n_items)


def context(lab: Lab) -> None:
    _, local = lab.ease_local()
    base = normalised(local)
    counts = np.bincount(lab.split.train.items, minlength=lab.split.train.n_items).astype(np.float32)
    print(f"ease_local alone {lab.ndcg(local).mean():.4f}, all-time popularity alone "
          f"{lab.ndcg(np.tile(counts, (len(lab.users), 1))).mean():.4f}")
    for width in (1, 7, 30, 180, 365, 1000):
        for beta in (0.0, 0.5, 1.0):
            for gamma in (0.0, 0.5):
                scores = context_scores(lab.split.train, lab.users, width, beta, gamma)
                blends = [round(float(lab.ndcg(base + w * normalised(scores)).mean()), 4) for w in (0.05, 0.1, 0.25, 0.5)]
                print(f"context {width} d, beta {beta}, gamma {gamma}: alone {lab.ndcg(scores).mean():.4f}, "
                      f"ease_local + w x it (w 0.05/0.1/0.25/0.5) {blends}", flush=True)


def recent(data: Interactions, catalog: Catalog) -> None:
    for method in SPLITS:
        targets = targets_split(make_split(data, method, **SPLITS[method]).train)
        labs = {name: Lab(part, catalog) for name, part in targets.items()}
        model = TimeLocalEASE().fit(next(iter(targets.values())).train, catalog)
        for name, lab in labs.items():
            longer = np.array([len(q.history) for q in lab.queries]) > 10
            row = []
            for weight in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 100.0):
                model.recent_weight = weight
                per_user = lab.ndcg(score_queries(model, lab.queries, lab.split.train.n_items))
                row.append(f"{weight}: {per_user.mean():.4f} (over 10 items {per_user[longer].mean():.4f})")
            print(f"{method} / {name} ({len(lab.users)} users): " + "; ".join(row), flush=True)


def edlae(lab: Lab) -> None:
    gram = time_local_gram(lab.split.train, 3600.0, 0.0)
    model, _ = lab.ease_local()
    for p, lam in ((0.0, 100.0), (0.0, 300.0), (0.0, 1000.0), (0.1, 150.0), (0.25, 50.0)):
        start = time.perf_counter()
        model.weights = ease_dense(gram, lam + p / (1 - p) * np.diag(gram)) if p else ease_dense(gram, lam)
        scores = score_queries(model, lab.queries, lab.split.train.n_items)
        print(f"p {p}, lambda {lam}: {lab.ndcg(scores).mean():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("context", "recent", "edlae"))
    parser.add_argument("--head-fraction", type=float, default=1.0, help="the first FRACTION of the log only")
    parser.add_argument("--test", action="store_true", help="the random split's test part (settings fixed on validation)")
    args = parser.parse_args(argv)
    ratings = read_ratings(None)
    ratings = ratings.iloc[: int(len(ratings) * args.head_fraction)]
    data = Interactions.from_frame(ratings, DEFAULT_EVENT_WEIGHTS)
    catalog = Catalog()
    for record in read_movies(None):
        catalog.upsert(record)
    if args.what == "recent":
        recent(data, catalog)
        return 0
    split = make_split(data, "random", **SPLITS["random"])
    lab = Lab(split if args.test else validation_split(split.train, "random", **SPLITS["random"]), catalog)
    (context if args.what == "context" else edlae)(lab)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
