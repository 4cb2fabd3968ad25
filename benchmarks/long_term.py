"""How much long-term taste the served query should carry (issue 13.4), on validation only.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src flock /tmp/bench.lock python benchmarks/long_term.py

For each benchmark split of ml-latest-small (accuracy.SPLITS), a validation split is carved from
its TRAINING part (the same way, and "mixed"); online item-kNN is fitted on the validation-train
part and asked with the served query (`build_query`: the latest `query_len` distinct items,
position decay) plus `long_term_weight` on every item of the user's whole history."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import SPLITS  # noqa: E402

from pulserec.config import DEFAULT_EVENT_WEIGHTS, Settings  # noqa: E402
from pulserec.evaluation.evaluate import Histories, held_out_users, metrics_of, score_queries, top_k  # noqa: E402
from pulserec.evaluation.split import make_split, validation_split  # noqa: E402
from pulserec.ingest.movielens import read_ratings  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.models.item_knn import ItemKNN  # noqa: E402

WEIGHTS = (0.0, 0.03, 0.1, 0.3, 1.0, 3.0)


def served_queries(train: Interactions, users, long_term_weight: float, settings: Settings):
    """The query the server builds for each user from their training events (the evaluator's
    Histories build it with the server's own function, serving_query)."""
    histories = Histories(train, replace(settings, long_term_weight=long_term_weight))
    return [histories.query(int(user)) for user in users]


def validation_sets(data: Interactions):
    """For every benchmark split: (split, validation name, validation split, its held-out users,
    online item-kNN fitted on its training part, those users' seen items)."""
    for method, params in SPLITS.items():
        split = make_split(data, method, **params)
        for name, val in ((method, validation_split(split.train, method, **params)),
                          ("mixed", validation_split(split.train, "mixed"))):
            users = held_out_users(val)
            yield method, name, val, users, ItemKNN().fit(val.train), val.train.to_csr()[users]


def main() -> None:
    settings = Settings()
    data = Interactions.from_frame(read_ratings(None), DEFAULT_EVENT_WEIGHTS)
    print("| split | validation | " + " | ".join(str(w) for w in WEIGHTS) + " |")
    for method, name, val, users, model, seen in validation_sets(data):
        cells = []
        for weight in WEIGHTS:
            queries = served_queries(val.train, users, weight, settings)
            recs = top_k(score_queries(model, queries, val.train.n_items), 10, seen)
            cells.append(f"{metrics_of(recs, val, users, ks=(10,))['ndcg@10']:.4f}")
        print(f"| {method} | {name} ({len(users)} users) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
