"""Bounded co-occurrence on the import path (issue 17.2/17.3): NDCG@10 of item-kNN on MovieLens
leave-last-out when its co-occurrence is built as a bulk import builds it (chunks of N events,
each owner's last `window` touches before the chunk as context), folding on the bulk schedule
with cap C (`CoOccurrence.mid_cap`: the online state's `MID_CAP`, which MovieLens never reaches
before the load's end, and smaller caps that make it fold on the way, as a large shop does),
next to the unbounded structure and the one-fold fit (benchmarks/cooc_bound.py). Validation
split (carved from train) and test. The result should not depend on the chunk size.

    PYTHONPATH=src python benchmarks/cooc_bound_import.py [35000,5000,1000] [8000000,400000,100000]"""
import os
import sys
import time

import numpy as np

from pulserec.config import DEFAULT_EVENT_WEIGHTS, Settings
from pulserec.evaluation.evaluate import evaluate
from pulserec.evaluation.split import leave_last_out, validation_split
from pulserec.ingest.movielens import read_ratings
from pulserec.models.interactions import Interactions
from pulserec.models.item_knn import ItemKNN
from pulserec.online.cooccurrence import MID_CAP, CoOccurrence, prefixed

S = Settings()


def chunked(data: Interactions, chunk: int, cap: int, k: int, halflife: float) -> tuple[CoOccurrence, int]:
    """The co-occurrence a bulk load in `chunk`-event chunks builds, and the folds it made."""
    cooc = CoOccurrence(S.cooc_window, S.cooc_gap_tau, max_neighbours=k, evict_halflife=halflife, mid_cap=cap)
    folds = 0
    compact = cooc.compact

    def counted() -> None:
        nonlocal folds
        folds += 1
        compact()

    cooc.compact = counted  # type: ignore[method-assign]
    order = np.argsort(data.timestamps, kind="stable")
    users, items = data.users[order].astype(np.int64), data.items[order].astype(np.int64)
    weights, ts = data.weights[order].astype(np.float64), data.timestamps[order].astype(np.float64)
    w = S.cooc_window
    for start in range(0, len(users), chunk):
        sl = slice(start, start + chunk)
        earlier = np.flatnonzero(np.isin(users[:start], np.unique(users[sl])))
        if len(earlier):
            by_user = earlier[np.argsort(users[earlier], kind="stable")]
            u = users[by_user]
            ends = np.r_[np.flatnonzero(u[1:] != u[:-1]) + 1, len(u)]
            run_end = np.repeat(ends, np.diff(np.r_[0, ends]))
            ctx = by_user[run_end - np.arange(len(u)) <= w]
        else:
            ctx = earlier
        log = prefixed(users[sl], items[sl], weights[sl], ts[sl], (users[ctx], items[ctx], weights[ctx], ts[ctx]))
        *arrays, fresh = log
        cooc.add_log(*arrays, fresh=fresh)
    cooc.compact()  # the bulk load's end (OnlineState.end_bulk)
    return cooc, folds


def main() -> None:
    path = os.environ.get("PULSEREC_MOVIELENS", "/work/shared/data/ml-latest-small")
    split = leave_last_out(Interactions.from_frame(read_ratings(path), DEFAULT_EVENT_WEIGHTS))
    validation = validation_split(split.train, "leave-last-out")
    k, halflife = S.cooc_max_neighbours, S.cooc_evict_halflife
    chunk_sizes = [int(c) for c in (sys.argv[1] if len(sys.argv) > 1 else "35000,5000,1000").split(",")]
    caps = [int(c) for c in (sys.argv[2] if len(sys.argv) > 2 else f"{MID_CAP},400000,100000").split(",")]
    for name, part in (("validation", validation), ("test", split)):
        unbounded = evaluate(ItemKNN(), part, ks=(10,)).metrics["ndcg@10"]
        one_fold = evaluate(ItemKNN(max_neighbours=k, evict_halflife=halflife), part, ks=(10,)).metrics["ndcg@10"]
        print(f"{name}: unbounded {unbounded:.4f}; one fold (fit) {one_fold:.4f} ({100 * (one_fold / unbounded - 1):+.2f}%)")
        for c in chunk_sizes:
            cells = []
            for cap in caps:
                t = time.process_time()
                model = ItemKNN(max_neighbours=k, evict_halflife=halflife)
                model.cooc, folds = chunked(part.train, c, cap, k, halflife)
                ndcg = evaluate(model, part, ks=(10,), fit=False).metrics["ndcg@10"]
                cells.append(f"cap {cap:,}: {ndcg:.4f} ({100 * (ndcg / unbounded - 1):+.2f}%, {folds} folds, "
                             f"nnz {model.cooc.nnz:,}, {time.process_time() - t:.1f}s)")
            print(f"  chunks of {c}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
