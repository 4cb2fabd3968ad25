"""Bounded co-occurrence (issue 17.2): NDCG@10 of item-kNN on MovieLens leave-last-out when
each item keeps only its K heaviest neighbours, next to the unbounded structure.

    PYTHONPATH=src python benchmarks/cooc_bound.py [--movielens PATH] [--k 25,50,100,200,400]

K is chosen on a leave-last-out validation split carved from the training part; the test part
only reports. The setting this chooses is `cooc_max_neighbours` (0 = unbounded)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table  # noqa: E402

from pulserec.config import DEFAULT_EVENT_WEIGHTS  # noqa: E402
from pulserec.evaluation.evaluate import evaluate  # noqa: E402
from pulserec.evaluation.split import leave_last_out, validation_split  # noqa: E402
from pulserec.ingest.movielens import read_ratings  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.models.item_knn import ItemKNN  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movielens", default=os.environ.get("PULSEREC_MOVIELENS", "../shared/data/ml-latest-small"))
    parser.add_argument("--k", default="25,50,100,200,400")
    args = parser.parse_args()
    split = leave_last_out(Interactions.from_frame(read_ratings(args.movielens), DEFAULT_EVENT_WEIGHTS))
    validation = validation_split(split.train, "leave-last-out")  # K is chosen here, never on the test part
    ks = [0, *(int(v) for v in args.k.split(","))]
    rows, base = [], {}
    for k in ks:
        cells = [k or "unbounded"]
        for name, part in (("validation", validation), ("test", split)):
            model = ItemKNN(max_neighbours=k)
            ndcg = evaluate(model, part, ks=(10,)).metrics["ndcg@10"]
            base.setdefault(name, (ndcg, model.cooc.nnz))
            cells += [f"{ndcg:.4f}", f"{100 * (ndcg / base[name][0] - 1):+.2f}%"]
        cells += [f"{model.cooc.nnz:,}", f"{model.cooc.nnz / base['test'][1]:.2f}"]
        rows.append(cells)
    print(f"# item-kNN, MovieLens leave-last-out, {split.train.n_users} users, {split.train.n_items} items")
    print_table(["K (neighbours per item)", "validation NDCG@10", "vs unbounded", "test NDCG@10", "vs unbounded",
                 "stored pairs (test fit)", "share"], rows)


if __name__ == "__main__":
    main()
