"""Offline accuracy of pulserec's models against peer libraries, in ONE run, on the SAME split.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src flock /tmp/bench.lock python benchmarks/accuracy.py --tune
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src flock /tmp/bench.lock python benchmarks/accuracy.py \
        --splits leave-last-out --models default,auto --peers ease,rp3beta,recbole_sasrec

Three splits (SPLITS): leave-last-out; a global time split (the last 40% of events, new users
warmed up with their first 5 events after the cut, >= 200 test users); a per-user random 75/25
split (long-term taste). Peers: EASE and RP3beta (closed_form.py, from their papers), implicit
ALS/BPR, Surprise SVD, RecBole SASRec/GRU4Rec (recbole_peers.py, in RecBole's own venv).

Hyper-parameters (ours and the peers' alike) are chosen by grid search on a validation split
carved from each split's TRAINING data (never its test part), maximising NDCG@10, and written
to benchmarks/accuracy_params.json. Every model then trains on the full training part and is
measured by pulserec.evaluation (same queries, same seen-item exclusion, same metrics). The
`default` and `auto` rows are what a user gets without `strategy=`: `auto` is the
self-chosen default (models/auto.py, its weights learned on its own validation split, never
on these test parts), `default` the built-in blend served before any training. The ratio of
each to the best peer comes with a paired bootstrap 95% interval over test users."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import PEERS, SurpriseSVD, available  # noqa: E402
from pulserec.evaluation.bootstrap import ratio_interval  # noqa: E402

from pulserec.config import DEFAULT_EVENT_WEIGHTS, Settings  # noqa: E402
from pulserec.evaluation.evaluate import EvalResult, evaluate  # noqa: E402
from pulserec.evaluation.metrics import mae, rmse  # noqa: E402
from pulserec.evaluation.report import print_table, write_report  # noqa: E402
from pulserec.evaluation.split import Split, make_split, validation_split  # noqa: E402
from pulserec.ingest.movielens import read_movies, read_ratings  # noqa: E402
from pulserec.models.auto import AutoBlend  # noqa: E402
from pulserec.models.blend import Blend  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.models.item_knn import ItemKNN  # noqa: E402
from pulserec.models.registry import build_model  # noqa: E402
from pulserec.models.rerank import Reranked  # noqa: E402
from pulserec.online.catalog import Catalog  # noqa: E402
from pulserec.recommend.auto_default import first_params  # noqa: E402
from pulserec.recommend.training import built_for_training  # noqa: E402

PARAMS_FILE = Path(__file__).with_name("accuracy_params.json")
OURS = ("default", "auto", "popular", "item_knn", "item_knn_bm25", "als", "ease", "ease_local", "rp3beta", "hybrid",
        "rerank")
#: What a user gets without `strategy=` (the first one found in the results is the headline).
DEFAULTS = ("auto", "default")
SPLITS: dict[str, dict[str, float]] = {
    "leave-last-out": {},
    "time": {"test_fraction": 0.4, "warm_start": 5},
    "random": {"test_fraction": 0.25},
}
HYBRID_COMPONENTS = ("als", "item_knn_bm25", "user_knn", "content", "popular")

GRIDS: dict[str, dict[str, list[Any]]] = {
    "als": {"factors": [32, 64, 128], "regularization": [0.1, 1.0, 10.0], "alpha": [0.5, 2.0]},
    "bpr": {"learning_rate": [0.02, 0.05], "epochs": [20, 40]},
    "user_knn": {"k": [20, 50, 100, 200], "weighting": ["bm25", "tfidf", "none"]},
    "item_knn_bm25": {"k": [20, 50, 100, 200], "weighting": ["bm25", "tfidf", "none"]},
    "content": {"decay_halflife": [5.0, 20.0, 1000.0]},
    "implicit_als": {"factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0], "alpha": [0.5, 2.0]},
    "implicit_bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05]},
    "ease": {"l2": [100.0, 300.0, 1000.0]},
    # the kernel width of the time-local EASE (models/ease_local.py); floor 1 would be plain EASE
    "ease_local": {"regularization": [300.0], "time_scale": [1800.0, 3600.0, 14400.0], "floor": [0.0, 0.1]},
    "rp3beta": {"alpha": [0.5, 1.0], "beta": [0.2, 0.5], "top_k": [100]},
}
#: Peers tuned with fewer points than ours would be an unfair comparison; RecBole's sequence
#: models run with RecBole's model defaults (SASRec: 2 layers, 2 heads, hidden 64, inner 256;
#: GRU4Rec: embedding 64, 1 layer) but GRU4Rec's hidden size 64 (its default 128: the 2-core
#: box), sequences of the last 50 items, CE loss, at most 20 epochs with early stopping on
#: RecBole's leave-one-out validation and 150 s of training each (recbole_peers.py), not tuned.
PEER_DEFAULTS: dict[str, dict[str, Any]] = {"recbole_sasrec": {"budget_s": 150},
                                            "recbole_gru4rec": {"hidden_size": 64, "budget_s": 150}}


def make(name: str, params: dict[str, Any]):
    if name in PEERS:
        return PEERS[name](**{**PEER_DEFAULTS.get(name, {}), **params})
    if name == "default":
        return BuiltInDefault()
    return built_for_training(name, params, Settings())  # as `pulserec train` builds it (auto: the request's overhead)


class BuiltInDefault(Blend):
    """The `default` strategy before any model is trained: online item-kNN plus a little
    trending (recommend/model_set.py), here over state built from the training log."""

    def __init__(self) -> None:
        settings = Settings()
        self.item_knn, self.trending = ItemKNN(), build_model("trending")
        super().__init__([(self.item_knn, 1.0), (self.trending, settings.trending_blend)], name="default")

    def fit(self, data: Interactions, catalog=None) -> BuiltInDefault:
        self.item_knn.fit(data, catalog)
        self.trending.fit(data, catalog)
        return self


def hybrid_params(chosen: dict[str, dict[str, Any]], method: str) -> dict[str, Any]:
    return {
        "components": [(c, chosen.get(c, {})) for c in HYBRID_COMPONENTS],
        "validation": method,
    }


def auto_params(method: str, validation: str, settings: Settings | None = None) -> dict[str, Any]:
    """`auto` as `pulserec train` and `serve` ship it: recommend/auto_default.first_params, the one
    function that decides its candidates (SASRec with the `seq` extra), validation and latency
    budget, under the default settings (or `settings`: --auto-candidates); with "split" it learns
    on a validation split of the test split's kind carved from the training part instead, as a
    user who knows what they serve would set `auto_validation`."""
    params = first_params(settings or Settings())
    if validation == "split":
        params.update(validation=method, validation_params=SPLITS[method])
    return params


def recbole_overrides(epochs: int | None, budget_s: float | None) -> dict[str, dict[str, Any]]:
    """The RecBole peers' epochs / training budget given on the command line (none: their defaults)."""
    given = {key: value for key, value in (("epochs", epochs), ("budget_s", budget_s)) if value is not None}
    return {name: dict(given) for name in PEER_DEFAULTS} if given else {}


def tune(split: Split, method: str, catalog: Catalog, names: list[str]) -> dict[str, dict[str, Any]]:
    """Grid search of each model's parameters on a validation split carved from split.train."""
    val = validation_split(split.train, method, **SPLITS[method])
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


def cached_path(cache: Path | None, method: str, name: str, params: dict[str, Any], data_tag: str = "") -> Path | None:
    """Where one (split, model, parameters) result is kept between runs (None: no cache). The key
    holds the contents of the code the result depends on (code_version), so it is reused only
    for that code, and `data_tag` when the data is not the whole log (--head-fraction)."""
    if cache is None:
        return None
    parts = [method, name, params, SPLITS[method], code_version(name), *([data_tag] if data_tag else [])]
    key = json.dumps(parts, sort_keys=True, default=str)
    return cache / f"{method}-{name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def code_version(name: str) -> str:
    """A hash of what a result depends on: the evaluator, the query, the peers' shared adapter
    code and the peer's own file(s) for a peer; all of pulserec's models besides for ours."""
    src = Path(__file__).resolve().parents[1] / "src" / "pulserec"
    here = Path(__file__).resolve().parent
    files = [*sorted((src / "evaluation").glob("*.py")), src / "models" / "query.py", here / "peer_base.py",
             here / "peers.py"]
    if name in PEERS:
        files.append(Path(inspect.getsourcefile(PEERS[name])))
        files += [here / "recbole_runner.py"] if files[-1].name == "recbole_peers.py" else []
    else:
        files += sorted((src / "models").glob("*.py")) + sorted((src / "online").glob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def evaluated(name: str, chosen: dict[str, Any], split: Split, catalog: Catalog, path: Path | None) -> EvalResult:
    """One model's result on `split`: from the cache file when there is one, else measured (and kept)."""
    if path is not None and path.is_file():
        kept = json.loads(path.read_text())
        return EvalResult(**{**kept, "per_user": np.asarray(kept["per_user"], dtype=np.float64)})
    model = make(name, chosen)
    result = evaluate(model, split, catalog=catalog, label=name)
    if isinstance(model, SurpriseSVD):
        result.metrics.update(rating_errors(model, split))
    result.params = {**chosen, "choice": model.choice()} if isinstance(model, AutoBlend) else chosen
    if isinstance(model, Reranked):  # what the stage learned: its validation scores, fallback, rounds
        result.params = {**chosen, "learned": model.learned()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**result.__dict__, "per_user": result.per_user.tolist()}, default=str))
    return result


def run_split(method: str, data: Interactions, catalog: Catalog, params: dict[str, Any], names: list[str],
              cache: Path | None = None, data_tag: str = ""):
    split = make_split(data, method, **SPLITS[method])
    print(f"\n== split {method}: {split.stats}", flush=True)
    results: list[EvalResult] = []
    for name in names:
        # a peer's own defaults count in its cache key: a changed default is a new result
        chosen = hybrid_params(params, method) if name == "hybrid" else {**PEER_DEFAULTS.get(name, {}), **params.get(name, {})}
        path = cached_path(cache, method, name, chosen, data_tag)
        kept = " (cached)" if path is not None and path.is_file() else ""
        result = evaluated(name, chosen, split, catalog, path)
        results.append(result)
        print(f"  {name:15s} NDCG@10 {result.metrics['ndcg@10']:.4f}  fit {result.fit_seconds:.2f}s{kept}", flush=True)
    return split, results


def ratio_lines(results: list[EvalResult]) -> tuple[str, dict[str, Any]]:
    """Default (and best of ours) / best peer NDCG@10, each with a paired bootstrap 95% CI."""
    peers = [r for r in results if r.model in PEERS]
    if not peers:
        return "no peer available", {}
    best_peer = max(peers, key=lambda r: r.metrics["ndcg@10"])
    ours = [r for r in results if r.model not in PEERS]
    best_ours = max(ours, key=lambda r: r.metrics["ndcg@10"])
    lines, raw = [], {"best_peer": best_peer.model}
    shown = [r for r in ours if r.model in DEFAULTS] + ([best_ours] if best_ours.model not in DEFAULTS else [])
    for r in shown:
        interval = ratio_interval(r.per_user, best_peer.per_user)
        lines.append(f"NDCG@10 {r.model} ({r.metrics['ndcg@10']:.4f}) / best peer ({best_peer.model}, "
                     f"{best_peer.metrics['ndcg@10']:.4f}) = {interval}")
        raw[r.model] = {"ratio": interval.value, "low": interval.low, "high": interval.high}
    return "\n".join(lines), raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--movielens", default=None, help="ml-latest-small directory (default: $PULSEREC_MOVIELENS)")
    parser.add_argument("--splits", default=",".join(SPLITS))
    parser.add_argument("--head-fraction", type=float, default=1.0,
                        help="measure on the first FRACTION of the log's timeline only: a second data set of the same "
                             "kind, to check that what was chosen on the whole one generalises (issue 18.6)")
    parser.add_argument("--tail-fraction", type=float, default=1.0,
                        help="measure on the last FRACTION of the log's timeline only: a third data set of the same "
                             "kind (another period, other users' mix), for the same check")
    parser.add_argument("--models", default=",".join(OURS), help="our models to run (default: all of OURS)")
    parser.add_argument("--peers", default=",".join(PEERS), help="peers to run (default: every available one)")
    parser.add_argument("--tune", action="store_true", help="choose hyper-parameters on validation splits first")
    parser.add_argument("--params", type=Path, default=PARAMS_FILE)
    parser.add_argument("--auto-candidates", default=None,
                        help="what `auto` chooses from, as the auto_candidates setting names them (default: what "
                             "ships, every installed candidate: SASRec with the seq extra; naming fewer measures "
                             "something else than what `pulserec train` ships)")
    parser.add_argument("--auto-validation", choices=("balanced", "split"), default="balanced",
                        help="what `auto` learns its weights on: its own default (balanced) or a validation split "
                             "of the same kind as the test split, carved from the training part")
    parser.add_argument("--report", type=Path, default=Path("reports/accuracy"))
    parser.add_argument("--json", type=Path, default=None, help="also write raw results here")
    parser.add_argument("--cache", type=Path, default=None,
                        help="keep each (split, model, params) result here and reuse it in later runs of the same "
                             "code: a slow peer is measured once, and a run cut short keeps what it finished")
    parser.add_argument("--recbole-epochs", type=int, default=None,
                        help="at most this many epochs of the RecBole peers (default recbole_peers.EPOCHS, early stopping)")
    parser.add_argument("--recbole-budget", type=float, default=None,
                        help="seconds of training per RecBole peer (default PEER_DEFAULTS' 150 s: under one epoch "
                             "on a loaded 2-core box; a converged run needs tens of minutes)")
    parser.add_argument("--extra", default="", help="more of our models to include, e.g. sasrec,gru4rec,content_embed "
                                                    "(default hyper-parameters; they need the seq / embed extras)")
    args = parser.parse_args(argv)
    if not 0 < args.head_fraction <= 1 or not 0 < args.tail_fraction <= 1:
        parser.error("--head-fraction and --tail-fraction must be in (0, 1]")
    if args.head_fraction < 1 and args.tail_fraction < 1:
        parser.error("give --head-fraction or --tail-fraction, not both")

    ratings = read_ratings(args.movielens)
    if args.head_fraction < 1.0:  # a second data set of the same kind: the log's first part (sorted by time)
        ratings = ratings.iloc[: int(len(ratings) * args.head_fraction)]
        print(f"the first {args.head_fraction:.0%} of the log: {len(ratings):,} events")
    if args.tail_fraction < 1.0:
        ratings = ratings.iloc[len(ratings) - int(len(ratings) * args.tail_fraction):].reset_index(drop=True)
        print(f"the last {args.tail_fraction:.0%} of the log: {len(ratings):,} events")
    data = Interactions.from_frame(ratings, DEFAULT_EVENT_WEIGHTS)
    catalog = Catalog()
    for record in read_movies(args.movielens):
        catalog.upsert(record)
    wanted = [p for p in args.peers.split(",") if p]
    peers = [name for name in wanted if available(PEERS[name])]
    missing = [name for name in wanted if not available(PEERS[name])]
    if missing:
        print(f"peers not importable (skipped): {', '.join(missing)}")
    names = [*[m for m in args.models.split(",") if m], *[m for m in args.extra.split(",") if m], *peers]
    stored = json.loads(args.params.read_text()) if args.params.is_file() else {}
    auto_settings = Settings(auto_candidates=tuple(args.auto_candidates.split(","))) if args.auto_candidates else None
    if auto_settings is not None:
        auto_settings.validate()
    sections, raw = [], {}
    for method in args.splits.split(","):
        if args.tune:
            start = time.perf_counter()
            # merged: tuning some models keeps the others' stored choices
            stored[method] = {**stored.get(method, {}), **tune(make_split(data, method, **SPLITS[method]), method, catalog, names)}
            print(f"  tuning took {time.perf_counter() - start:.0f}s")
            args.params.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
        chosen = {**stored.get(method, {}), "auto": auto_params(method, args.auto_validation, auto_settings)}
        if args.auto_validation == "split":  # the re-ranking stage learns on the same kind of validation
            chosen["rerank"] = {"validation": method, "validation_params": SPLITS[method]}
        chosen.update(recbole_overrides(args.recbole_epochs, args.recbole_budget))
        tag = (f"head {args.head_fraction}" if args.head_fraction < 1 else
               f"tail {args.tail_fraction}" if args.tail_fraction < 1 else "")
        split, results = run_split(method, data, catalog, chosen, names, args.cache, tag)
        line, ratios = ratio_lines(results)
        print_table(results, title=f"split: {method}  ({split.stats['test_users']} test users)")
        svd = next((r for r in results if r.model == "surprise_svd"), None)
        if svd is not None:
            print(f"surprise_svd RMSE {svd.metrics['rmse']:.4f}  MAE {svd.metrics['mae']:.4f}")
        print(line)
        sections.append((f"split: {method}", results, f"{line}. Split stats: {split.stats}."))
        raw[method] = {"stats": split.stats, "ratios": ratios,
                       "results": [{k: v for k, v in r.__dict__.items() if k != "per_user"} for r in results]}
    md, page = write_report(sections, args.report, title="pulserec accuracy vs peers (ml-latest-small)")
    print(f"report: {md} {page}")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
