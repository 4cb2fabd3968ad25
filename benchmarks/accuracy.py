"""Offline accuracy of pulserec's models against peer libraries, in ONE run, on the SAME split.

    PYTHONPATH=src python benchmarks/accuracy.py --tune            # choose hyper-parameters, then evaluate
    PYTHONPATH=src python benchmarks/accuracy.py                   # evaluate with benchmarks/accuracy_params.json

Hyper-parameters (ours and the peers' alike) are chosen by grid search on a validation split
carved from each split's TRAINING data (never its test part), maximising NDCG@10, and written
to benchmarks/accuracy_params.json. Every model then trains on the full training part and is
measured by pulserec.evaluation (same queries, same seen-item exclusion, same metrics)."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import PEERS, SurpriseSVD, available  # noqa: E402

from pulserec.config import DEFAULT_EVENT_WEIGHTS  # noqa: E402
from pulserec.evaluation.evaluate import EvalResult, evaluate  # noqa: E402
from pulserec.evaluation.metrics import mae, rmse  # noqa: E402
from pulserec.evaluation.report import print_table, write_report  # noqa: E402
from pulserec.evaluation.split import Split, make_split, validation_split  # noqa: E402
from pulserec.ingest.movielens import read_movies, read_ratings  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.models.registry import build_model  # noqa: E402
from pulserec.online.catalog import Catalog  # noqa: E402

PARAMS_FILE = Path(__file__).with_name("accuracy_params.json")
OURS = ("popular", "item_knn", "user_knn", "item_knn_bm25", "als", "bpr", "content", "hybrid")
HYBRID_COMPONENTS = ("als", "item_knn_bm25", "user_knn", "content", "popular")

GRIDS: dict[str, dict[str, list[Any]]] = {
    "als": {"factors": [32, 64, 128], "regularization": [0.1, 1.0, 10.0], "alpha": [0.5, 2.0]},
    "bpr": {"learning_rate": [0.02, 0.05], "epochs": [20, 40]},
    "user_knn": {"k": [20, 50, 100, 200], "weighting": ["bm25", "tfidf", "none"]},
    "item_knn_bm25": {"k": [20, 50, 100, 200], "weighting": ["bm25", "tfidf", "none"]},
    "content": {"decay_halflife": [5.0, 20.0, 1000.0]},
    "implicit_als": {"factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0], "alpha": [0.5, 2.0]},
    "implicit_bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05]},
    "lightfm_warp": {"no_components": [32, 64], "epochs": [20, 50]},
}


def make(name: str, params: dict[str, Any]):
    if name in PEERS:
        return PEERS[name](**params)
    return build_model(name, **params)


def hybrid_params(chosen: dict[str, dict[str, Any]], method: str) -> dict[str, Any]:
    return {
        "components": [(c, chosen.get(c, {})) for c in HYBRID_COMPONENTS],
        "validation": method,
    }


def tune(split: Split, method: str, catalog: Catalog, names: list[str]) -> dict[str, dict[str, Any]]:
    """Grid search of each model's parameters on a validation split carved from split.train."""
    val = validation_split(split.train, method)
    print(f"  validation split {val.stats}", flush=True)
    chosen: dict[str, dict[str, Any]] = {}
    for name in names:
        grid = GRIDS.get(name)
        if not grid:
            continue
        best, best_params = -1.0, {}
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            score = evaluate(make(name, params), val, ks=(10,), catalog=catalog).metrics["ndcg@10"]
            if score > best:
                best, best_params = score, params
        chosen[name] = best_params
        print(f"  tuned {name}: {best_params} (validation NDCG@10 {best:.4f})", flush=True)
    return chosen


def rating_errors(model: SurpriseSVD, split: Split) -> dict[str, float]:
    test = split.test
    rated = ~np.isnan(test.values)
    predicted = model.predict_ratings(test.users[rated], test.items[rated])
    return {"rmse": rmse(predicted, test.values[rated]), "mae": mae(predicted, test.values[rated])}


def run_split(method: str, data: Interactions, catalog: Catalog, params: dict[str, Any], names: list[str]):
    split = make_split(data, method)
    print(f"\n== split {method}: {split.stats}", flush=True)
    results: list[EvalResult] = []
    for name in names:
        chosen = hybrid_params(params, method) if name == "hybrid" else params.get(name, {})
        model = make(name, chosen)
        result = evaluate(model, split, catalog=catalog, label=name)
        if isinstance(model, SurpriseSVD):
            result.metrics.update(rating_errors(model, split))
        result.params = chosen
        results.append(result)
        print(f"  {name:15s} NDCG@10 {result.metrics['ndcg@10']:.4f}  fit {result.fit_seconds:.2f}s", flush=True)
    return split, results


def ratio_line(results: list[EvalResult]) -> tuple[str, float]:
    ours = [r for r in results if r.model not in PEERS]
    peers = [r for r in results if r.model in PEERS]
    best_ours = max(ours, key=lambda r: r.metrics["ndcg@10"])
    best_peer = max(peers, key=lambda r: r.metrics["ndcg@10"]) if peers else None
    if best_peer is None:
        return "no peer available", float("nan")
    ratio = best_ours.metrics["ndcg@10"] / max(best_peer.metrics["ndcg@10"], 1e-12)
    return (
        f"NDCG@10 pulserec-best ({best_ours.model}, {best_ours.metrics['ndcg@10']:.4f}) / best peer "
        f"({best_peer.model}, {best_peer.metrics['ndcg@10']:.4f}) = {ratio:.3f}",
        ratio,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", default=None, help="ml-latest-small directory (default: $PULSEREC_MOVIELENS)")
    parser.add_argument("--splits", default="time,leave-last-out")
    parser.add_argument("--tune", action="store_true", help="choose hyper-parameters on validation splits first")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    parser.add_argument("--report", type=Path, default=Path("reports/accuracy"))
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--extra", default="", help="more of our models to include, e.g. sasrec,gru4rec,content_embed "
                                                    "(default hyper-parameters; they need the seq / embed extras)")
    args = parser.parse_args(argv)

    data = Interactions.from_frame(read_ratings(args.movielens), DEFAULT_EVENT_WEIGHTS)
    catalog = Catalog()
    for record in read_movies(args.movielens):
        catalog.upsert(record)
    peers = [name for name, cls in PEERS.items() if available(cls.module)]
    missing = [name for name, cls in PEERS.items() if not available(cls.module)]
    if missing:
        print(f"peers not importable (skipped): {', '.join(missing)}")
    names = [*OURS, *[m for m in args.extra.split(",") if m], *peers]
    stored = json.loads(args.params.read_text()) if args.params.is_file() else {}
    sections, raw = [], {}
    for method in args.splits.split(","):
        if args.tune:
            start = time.perf_counter()
            stored[method] = tune(make_split(data, method), method, catalog, names)
            print(f"  tuning took {time.perf_counter() - start:.0f}s")
            args.params.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
        split, results = run_split(method, data, catalog, stored.get(method, {}), names)
        line, _ = ratio_line(results)
        print_table(results, title=f"split: {method}  ({split.stats['test_users']} test users)")
        svd = next((r for r in results if r.model == "surprise_svd"), None)
        if svd is not None:
            print(f"surprise_svd RMSE {svd.metrics['rmse']:.4f}  MAE {svd.metrics['mae']:.4f}")
        print(line)
        sections.append((f"split: {method}", results, f"{line}. Split stats: {split.stats}."))
        raw[method] = {"stats": split.stats, "ratio": line, "results": [r.__dict__ for r in results]}
    md, page = write_report(sections, args.report, title="pulserec accuracy vs peers (ml-latest-small)")
    print(f"report: {md} {page}")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
