"""Wall time of ALS trained on Spark (local mode) vs in-process, on MovieLens ml-latest-small.

Measures, on the same prepared data and hyper-parameters (the `ALS()` defaults: 64 factors,
15 iterations, reg 10, alpha 2):

* in-process ALS with the default conjugate-gradient solver (what `pulserec train` runs);
* in-process ALS with ``solver="cholesky"`` (exact per-row solves: the same computation the
  Spark trainer distributes);
* Spark: session start, loading + preparing the log (staging to Parquet, id numbering, the
  (user, item, weight) triples), and the ALS iterations; and how far its factors are from the
  in-process exact trainer (they should agree to float rounding).

With ``--item-knn`` it also times item_knn_bm25 both ways (the Spark co-occurrence join grows
with the square of each user's item count: about 61M pairs on ml-latest-small).

Run:  PYTHONPATH=src python benchmarks/spark_training.py [--data PATH] [--master local[2]] [--item-knn]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np
from _common import machine, print_table

from pulserec.distributed.als import train_als
from pulserec.distributed.events import load_events, prepare
from pulserec.distributed.item_knn import train_item_knn
from pulserec.distributed.session import SparkConfig, spark_session
from pulserec.evaluation.data import load_training_data
from pulserec.ingest.movielens import ENV_VAR, movielens_path
from pulserec.models.als import ALS
from pulserec.models.item_knn_bm25 import ItemKNNBM25


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def top10_agreement(a: ALS, b: ALS) -> float:
    """Share of users whose top-10 items (by factor score) are the same set in both models."""
    sa, sb = a.user_factors @ a.item_factors.T, b.user_factors @ b.item_factors.T
    ta, tb = np.sort(np.argsort(-sa, axis=1)[:, :10], axis=1), np.sort(np.argsort(-sb, axis=1)[:, :10], axis=1)
    return float((ta == tb).all(axis=1).mean())


def knn_agreement(a: ItemKNNBM25, b: ItemKNNBM25) -> dict[str, float]:
    """How far two similarity matrices are apart, separating real differences from tie-breaking:
    top-k pruning keeps an arbitrary subset of equally similar neighbours at the cut (common on
    MovieLens, where many items share one rater), so compare each row's sorted values too."""
    same_set, value_diff = 0, 0.0
    for r in range(a.similarity.shape[0]):
        ra, rb = a.similarity[r], b.similarity[r]
        same_set += set(ra.indices) == set(rb.indices)
        va, vb = np.sort(ra.data), np.sort(rb.data)
        value_diff = max(value_diff, float(np.abs(va - vb).max()) if len(va) == len(vb) and len(va) else
                         (0.0 if len(va) == len(vb) else np.inf))
    return {"knn_max_entry_diff": float(abs(a.similarity - b.similarity).max()),
            "knn_rows_same_neighbours": same_set / a.similarity.shape[0],
            "knn_max_sorted_row_value_diff": value_diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get(ENV_VAR))
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--item-knn", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    path = movielens_path(args.data)
    rows, results = [], {"machine": machine(), "master": args.master, "load1_start": os.getloadavg()[0]}

    data, _, settings = load_training_data(movielens=path)
    print(f"{path}: {len(data):,} events, {data.n_users:,} users, {data.n_items:,} items; {machine()}")
    cg, t = timed(lambda: ALS().fit(data))
    rows.append(["als (cg, default)", "in-process", "-", round(t, 2)])
    exact, t = timed(lambda: ALS(solver="cholesky").fit(data))
    rows.append(["als (cholesky)", "in-process", "-", round(t, 2)])

    spark, t_session = timed(lambda: spark_session(SparkConfig.from_env(master=args.master)))
    staging = tempfile.TemporaryDirectory(prefix="pulserec-events-")
    prepared, t_prepare = timed(lambda: prepare(
        spark, load_events(spark, movielens=path, staging_dir=staging.name)[0], settings.weighting))
    distributed, t = timed(lambda: train_als(spark, prepared))
    rows.append(["als (cholesky)", f"spark {args.master}", f"{t_session:.1f} + {t_prepare:.1f}", round(t, 2)])
    diff = float(np.abs(distributed.user_factors @ distributed.item_factors.T - exact.user_factors @ exact.item_factors.T).max())
    results.update(spark_session_s=t_session, spark_prepare_s=t_prepare, max_score_diff_vs_exact=diff,
                   top10_same_vs_exact=top10_agreement(distributed, exact), top10_same_cg_vs_exact=top10_agreement(cg, exact),
                   same_ids=distributed.user_ids.ids == data.user_ids.ids and distributed.item_ids.ids == data.item_ids.ids)

    if args.item_knn:
        knn, t = timed(lambda: ItemKNNBM25().fit(data))
        rows.append(["item_knn_bm25", "in-process", "-", round(t, 2)])
        sknn, t = timed(lambda: train_item_knn(prepared))
        rows.append(["item_knn_bm25", f"spark {args.master}", "(shared)", round(t, 2)])
        results.update(knn_agreement(sknn, knn))

    results["rows"] = rows
    results["load1_end"] = os.getloadavg()[0]
    print_table(["model", "engine", "session + prepare (s)", "train (s)"], rows)
    print(json.dumps({k: v for k, v in results.items() if k != "rows"}, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    spark.stop()
    staging.cleanup()


if __name__ == "__main__":
    main()
