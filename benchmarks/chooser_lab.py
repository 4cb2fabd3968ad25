"""How `auto`'s chooser (models/blend_search.py) generalises, on cached candidate scores.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src nice -n 19 python benchmarks/chooser_lab.py pools DATA
    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src nice -n 19 python benchmarks/chooser_lab.py compare PEERS.json...

`pools` fits every `auto` candidate (models/auto.py:candidates, no SASRec: as accuracy.py's
`auto`) twice per split of benchmarks/accuracy.py: on the balanced validation carved from the
split's training part (evaluation/split.py:targets_split, exactly what AutoBlend.fit learns on)
and on the whole training part, and keeps each user's pool (the union of every candidate's top
100 unseen items: models/blend_search.py:candidate_pools) with the held-out hits, under
reports/chooser-lab/DATA-SPLIT-{val,test}.npz. DATA is `full`, `headF` (the first F of the
log's timeline: accuracy.py --head-fraction F) or `tailF` (the last F: --tail-fraction F).

`compare` runs the production weight search (TargetSearch) on each validation with the targets
weighted at the given precision powers and scores the weights it chose on the test part; the test part is never read
before the weights are fixed, so this is accuracy.py's `auto` row without refitting the
candidates (the same fits: accuracy.py's `auto` NDCG@10 agrees to the 4th digit); with
--own-target each split's validation learns on the target of that split's kind only (a
diagnosis: what one blend for every kind of test gives up). The peers'
NDCG@10 (and per-user values, for the paired interval) come from accuracy.py's --json / --cache
files given."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.evaluation.evaluate import Histories, held_out_users, relevant_of, score_queries
from pulserec.evaluation.metrics import discounts, hit_matrix
from pulserec.evaluation.split import make_split, targets_split
from pulserec.ingest.movielens import read_movies, read_ratings
from pulserec.models.auto import HISTORY_EDGES, LongTerm, candidates
from pulserec.models.blend import normalised
from pulserec.models.blend_search import TargetSearch, candidate_pools, history_bucket
from pulserec.models.hybrid import DEFAULT_GRID, _build, labels
from pulserec.models.interactions import Interactions
from pulserec.online.catalog import Catalog

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import SPLITS  # noqa: E402

OUT = Path("reports/chooser-lab")


def log_of(name: str, movielens: str | None) -> Interactions:
    ratings = read_ratings(movielens)  # sorted by time
    if name.startswith("head"):
        ratings = ratings.iloc[: int(len(ratings) * float(name[4:]))]
    elif name.startswith("tail"):
        ratings = ratings.iloc[len(ratings) - int(len(ratings) * float(name[4:])):].reset_index(drop=True)
    elif name != "full":
        raise SystemExit(f"unknown data set {name!r}: full, headF or tailF")
    return Interactions.from_frame(ratings, DEFAULT_EVENT_WEIGHTS)


def pools(train: Interactions, users: np.ndarray, catalog: Catalog, relevant: dict) -> dict[str, np.ndarray]:
    """Every candidate's pooled scores for `users` (one item-kNN fit serves both of its views)."""
    histories = Histories(train)
    queries = [histories.query(int(u)) for u in users]
    parts, plain = [], {}
    for spec in candidates(sequence=False):
        name, params = (spec, {}) if isinstance(spec, str) else spec
        if name == "long_term" and params.get("model") in plain:
            model = LongTerm.over(plain[params["model"]], params["weight"])
        else:
            model = _build(spec).fit(train, catalog)
            plain.setdefault(name, model) if not params else None
        parts.append(normalised(score_queries(model, queries, train.n_items)))
    items, pooled, invalid = candidate_pools(np.stack(parts), train.to_csr()[users])
    out = {"parts": pooled.astype(np.float32), "invalid": invalid, "users": users,
           "history": np.array([len(q.history) for q in queries]), "names": np.array(labels(candidates(sequence=False)))}
    for target, matrix in relevant.items():
        out[f"hits_{target}"] = hit_matrix(items, matrix) & ~invalid
        out[f"relevant_{target}"] = matrix.getnnz(axis=1)
    return out


def build(name: str, movielens: str | None) -> None:
    data, catalog = log_of(name, movielens), Catalog()
    for record in read_movies(movielens):
        catalog.upsert(record)
    OUT.mkdir(parents=True, exist_ok=True)
    for method, params in SPLITS.items():
        split = make_split(data, method, **params)
        targets = targets_split(split.train)
        train = next(iter(targets.values())).train
        users = np.unique(np.concatenate([held_out_users(part) for part in targets.values()]))
        np.savez(OUT / f"{name}-{method}-val.npz",
                 **pools(train, users, catalog, {t: relevant_of(part, users) for t, part in targets.items()}))
        users = held_out_users(split)
        np.savez(OUT / f"{name}-{method}-test.npz", **pools(split.train, users, catalog, {"test": relevant_of(split, users)}))
        print(f"{name} {method}: {split.stats['test_users']} test users", flush=True)


#: --own-target: the validation target of each split's kind (what the split's test asks).
OWN_TARGET = {"leave-last-out": "next", "random": "taste", "time": "time"}


def search_of(kept: np.lib.npyio.NpzFile, power: float, edges: tuple[int, ...], only: str | None = None) -> TargetSearch:
    targets = [only] if only else [k[5:] for k in kept.files if k.startswith("hits_")]
    buckets = history_bucket(kept["history"], edges)
    order = np.argsort(buckets, kind="stable")
    return TargetSearch.pooled(kept["parts"][:, order], kept["invalid"][order],
                               {t: kept[f"hits_{t}"][order] for t in targets},
                               {t: kept[f"relevant_{t}"][order] for t in targets}, buckets[order], precision=power)


def test_ndcg(kept: np.lib.npyio.NpzFile, weights: np.ndarray, edges: tuple[int, ...]) -> np.ndarray:
    """Per test user NDCG@10 of the blend with one weight row per history bucket."""
    rows = weights[np.minimum(history_bucket(kept["history"], edges), len(weights) - 1)]
    blended = np.einsum("uc,cul->ul", rows, kept["parts"])
    blended[kept["invalid"]] = -np.inf
    top = np.argsort(-blended, axis=1, kind="stable")[:, :10]
    hits = np.take_along_axis(kept["hits_test"], top, axis=1)
    ideal = np.cumsum(discounts(10))[np.clip(kept["relevant_test"], 1, 10) - 1]
    return (hits * discounts(10)).sum(axis=1) / ideal


def compare(peer_files: list[Path], powers: list[float], edges: tuple[int, ...], grid: tuple[float, ...],
            own_target: bool = False) -> None:
    from pulserec.evaluation.bootstrap import ratio_interval

    peers: dict[tuple[str, str], tuple[str, np.ndarray]] = {}
    for path in peer_files:  # accuracy.py --cache files: {model, metrics, per_user, ...}; name DATA-SPLIT-...
        kept = json.loads(path.read_text())
        data, method = path.parent.name, path.name.split("-" + kept["model"] + "-")[0]
        best = peers.get((data, method))
        if best is None or np.mean(kept["per_user"]) > np.mean(best[1]):
            peers[(data, method)] = (kept["model"], np.asarray(kept["per_user"]))
    for power in powers:
        for (data, method), (peer, peer_users) in sorted(peers.items()):
            val, test = (np.load(OUT / f"{data}-{method}-{kind}.npz") for kind in ("val", "test"))
            only = OWN_TARGET[method] if own_target else None
            weights, objective, _ = search_of(val, power, edges, only).search(grid, 2)
            ours = test_ndcg(test, weights, edges)
            names = [str(n) for n in val["names"]]
            chosen = [" ".join(f"{n}={w:g}" for n, w in zip(names, row) if w) for row in weights]
            print(f"p={power:g} {data:8s} {method:15s} auto {ours.mean():.4f} / {peer} {peer_users.mean():.4f} "
                  f"= {ratio_interval(ours, peer_users)}  (validation {objective:.4f}) {chosen}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pools")
    p.add_argument("data")
    p.add_argument("--movielens", default=None)
    c = sub.add_parser("compare")
    c.add_argument("peers", nargs="+", type=Path, help="accuracy.py --cache files of the peers, in folders named DATA")
    c.add_argument("--own-target", action="store_true",
                   help="learn on the target of the split's kind only (diagnosis: what one blend for all gives up)")
    c.add_argument("--grid", default=",".join(map(str, DEFAULT_GRID)), help="the weights' values (hybrid.DEFAULT_GRID)")
    c.add_argument("--powers", default="0,1", help="precision powers of the targets' weights (blend_search.target_weights)")
    args = parser.parse_args()
    if args.command == "pools":
        build(args.data, args.movielens)
    else:
        compare(args.peers, [float(p) for p in args.powers.split(",")], HISTORY_EDGES,
                tuple(float(g) for g in args.grid.split(",")), args.own_target)


if __name__ == "__main__":
    main()
