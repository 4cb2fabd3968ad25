"""What capping the served query's long-term part costs (long_term_max_items), on validation only.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/long_term_cap.py 0,100,200,300

Like benchmarks/long_term.py: for each benchmark split of ml-latest-small a validation split is
carved from its TRAINING part (the same way, and "mixed"); online item-kNN is fitted on the
validation-train part and asked with the served query, its older history items capped at K (those
most users share; 0 = every item). Prints NDCG@10 and the mean milliseconds per query scored."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from long_term import validation_sets  # noqa: E402

from pulserec.config import DEFAULT_EVENT_WEIGHTS, Settings  # noqa: E402
from pulserec.evaluation.evaluate import Histories, metrics_of, score_queries, top_k  # noqa: E402
from pulserec.ingest.movielens import read_ratings  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402


def main(caps: list[int]) -> None:
    settings = Settings()
    data = Interactions.from_frame(read_ratings(None), DEFAULT_EVENT_WEIGHTS)
    print("| split | validation | " + " | ".join(f"K={k}" for k in caps) + " |", flush=True)
    for method, name, val, users, model, seen in validation_sets(data):
        cells = []
        for cap in caps:
            histories = Histories(val.train, replace(settings, long_term_max_items=cap))
            queries = [histories.query(int(user)) for user in users]
            started = time.perf_counter()
            recs = top_k(score_queries(model, queries, val.train.n_items), 10, seen)
            ms = (time.perf_counter() - started) / len(users) * 1e3
            cells.append(f"{metrics_of(recs, val, users, ks=(10,))['ndcg@10']:.4f} ({ms:.1f} ms)")
        print(f"| {method} | {name} ({len(users)} users) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main([int(k) for k in (sys.argv[1] if len(sys.argv) > 1 else "0,100,200,300").split(",")])
