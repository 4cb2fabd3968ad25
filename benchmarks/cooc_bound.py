"""Bounded co-occurrence (issue 17.2): NDCG@10 of item-kNN on MovieLens leave-last-out when
each item keeps only its K heaviest neighbours, next to the unbounded structure.

    PYTHONPATH=src python benchmarks/cooc_bound.py [--movielens PATH] [--k 25,50,100,200,400]
        [--halflife-days 0,30,365]

K and the eviction half-life are chosen on a leave-last-out validation split carved from the
training part; the test part only reports. The settings this chooses are `cooc_max_neighbours`
(0 = unbounded) and `cooc_evict_halflife` (0 = evict by weight alone; else a pair's weight is
decayed by how long ago its neighbour item was last touched)."""

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
    parser.add_argument("--halflife-days", default="0", help="eviction half-lives to try (0 = by weight)")
    args = parser.parse_args()
    split = leave_last_out(Interactions.from_frame(read_ratings(args.movielens), DEFAULT_EVENT_WEIGHTS))
    validation = validation_split(split.train, "leave-last-out")  # K is chosen here, never on the test part
    halflives = [float(v) for v in args.halflife_days.split(",")]
    configs = [(0, 0.0)] + [(int(k), h) for k in args.k.split(",") for h in halflives]
    rows, base = [], {}
    for k, days in configs:
        cells = [k or "unbounded", days if k else "-"]
        for name, part in (("validation", validation), ("test", split)):
            model = ItemKNN(max_neighbours=k, evict_halflife=days * 86_400.0)
            ndcg = evaluate(model, part, ks=(10,)).metrics["ndcg@10"]
            base.setdefault(name, (ndcg, model.cooc.nnz))
            cells += [f"{ndcg:.4f}", f"{100 * (ndcg / base[name][0] - 1):+.2f}%"]
        cells += [f"{model.cooc.nnz:,}", f"{model.cooc.nnz / base['test'][1]:.2f}"]
        rows.append(cells)
    print(f"# item-kNN, MovieLens leave-last-out, {split.train.n_users} users, {split.train.n_items} items")
    print_table(["K (neighbours per item)", "eviction half-life (days)", "validation NDCG@10", "vs unbounded", "test NDCG@10", "vs unbounded",
                 "stored pairs (test fit)", "share"], rows)


if __name__ == "__main__":
    main()
