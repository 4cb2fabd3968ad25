"""Bounded co-occurrence (issue 17.2): NDCG@10 of item-kNN on MovieLens leave-last-out when
each item keeps only its K heaviest neighbours, next to the unbounded structure.

    PYTHONPATH=src python benchmarks/cooc_bound.py [--movielens PATH] [--k 25,50,100,200,400]

The setting this chooses is `cooc_max_neighbours` (0 = unbounded)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402

from pulserec.config import DEFAULT_EVENT_WEIGHTS  # noqa: E402
from pulserec.evaluation.evaluate import evaluate  # noqa: E402
from pulserec.evaluation.split import leave_last_out  # noqa: E402
from pulserec.ingest.movielens import read_ratings  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.models.item_knn import ItemKNN  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movielens", default=os.environ.get("PULSEREC_MOVIELENS", "../shared/data/ml-latest-small"))
    parser.add_argument("--k", default="25,50,100,200,400")
    args = parser.parse_args()
    split = leave_last_out(Interactions.from_frame(read_ratings(args.movielens), DEFAULT_EVENT_WEIGHTS))
    rows, base = [], None
    for k in [0, *(int(v) for v in args.k.split(","))]:
        model = ItemKNN(max_neighbours=k)
        result = evaluate(model, split, ks=(10,))
        ndcg, nnz = result.metrics["ndcg@10"], model.cooc.nnz
        base = base or (ndcg, nnz)
        rows.append([k or "unbounded", f"{ndcg:.4f}", f"{100 * (ndcg / base[0] - 1):+.2f}%", f"{result.metrics['hitrate@10']:.4f}",
                     f"{nnz:,}", f"{nnz / base[1]:.2f}"])
    print(f"# item-kNN, MovieLens leave-last-out, {split.train.n_users} users, {split.train.n_items} items")
    print_table(["K (neighbours per item)", "NDCG@10", "vs unbounded", "HitRate@10", "stored pairs", "share"], rows)


if __name__ == "__main__":
    main()
