"""What carries signal on the per-user random split that EASE misses (issue 18), on VALIDATION.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=src nice -n 19 python benchmarks/random_candidates.py \
        [--head-fraction 0.6] [--test] {context,recent,edlae}

The random split's training part (accuracy.SPLITS) is carved again into a random 75/25
validation split (`--test`: the test part instead, for settings fixed beforehand on validation);
every figure is NDCG@10 over its held-out users, asked with the served query
(evaluation/evaluate.Histories), training items excluded.

* context: time-context popularity, what was taken around THIS user's own active times: the
  user's training events binned by day, smoothed by an exp(-|dt| / width) kernel, against the
  log's item x day counts (each day's row divided by its total^gamma, the result by the item's
  count^beta); alone and added (weight w, normalised) to the time-local EASE.
* recent: the time-local EASE's `recent_weight` (models/ease.py) on the three validation targets
  auto learns on (evaluation/split.targets_split of the training part), per history bucket.
* edlae: EASE's L2 as lambda + p / (1 - p) * diag(G) (Steck 2020, emphasised denoising) over the
  time-local Gram matrix, and plain lambda values.
* adjacency: temporal adjacency, what OTHER users consumed within w positions of each of this
  user's training events in their own time-ordered sequences (both directions), summed over the
  user's whole training history (weight 1, or the neighbouring time gaps); and "bridging":
  for each pair (a, b) of the user's consecutive training events, the items others consumed
  right after a AND right before b, weighted by the pair's gap (held-out items of a random split
  lie in those gaps); alone and blended (weight w, normalised) with the time-local EASE.
* profile: the user's own bands, side information EASE's item pairs do not carry: a kernel
  density of their training items' log-popularity (and release year, from the title), and
  their genre shares (movies.csv); each alone, multiplying (density^g) or added to the
  time-local EASE's normalised scores.
* cost: the adjacency kNN's per-request cost, `score` of every held-out user's served query
  (in process, 3 rounds; long histories: the random split's users have 20-2,000 items).
* adjgram: the adjacency inside EASE instead of beside it: EASE over the time-local Gram matrix
  plus alpha x the adjacency counts F + F^T (window w), one solve each."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.signal
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import SPLITS  # noqa: E402

from pulserec.config import DEFAULT_EVENT_WEIGHTS  # noqa: E402
from pulserec.evaluation.evaluate import Histories, held_out_users, relevant_of, score_queries, top_k  # noqa: E402
from pulserec.evaluation.metrics import per_user_ndcg  # noqa: E402
from pulserec.evaluation.split import Split, make_split, targets_split, validation_split  # noqa: E402
from pulserec.ingest.movielens import read_movies, read_ratings  # noqa: E402
from pulserec.models.adjacency import AdjacencyKNN  # noqa: E402
from pulserec.models.blend import normalised  # noqa: E402
from pulserec.evaluation.bootstrap import ratio_interval  # noqa: E402
from pulserec.models.ease import EASE, ease_dense  # noqa: E402
from pulserec.models.ease_local import TimeLocalEASE, first_events, time_local_gram  # noqa: E402
from pulserec.models.interactions import Interactions  # noqa: E402
from pulserec.online.catalog import Catalog  # noqa: E402

DAY = 86_400.0


def context_scores(train: Interactions, users: np.ndarray, width_days: float, beta: float, gamma: float) -> np.ndarray:
    """(users x items) time-context popularity (module docstring), vectorised: day bins, one FFT
    convolution of the users' activity rows, one sparse product with the item x day counts."""
    days = ((train.timestamps - train.timestamps.min()) // DAY).astype(np.int64)
    n_days = int(days.max()) + 1
    counts = sp.csr_matrix((np.ones(len(days), np.float32), (days, train.items)), shape=(n_days, train.n_items))
    totals = np.asarray(counts.sum(axis=1)).ravel()
    counts = sp.diags((1.0 / np.maximum(totals, 1.0) ** gamma).astype(np.float32)) @ counts
    active = sp.csr_matrix((np.ones(len(days), np.float32), (train.users, days)), shape=(train.n_users, n_days))[users]
    reach = int(min(n_days, np.ceil(8 * width_days)))
    kernel = np.exp(-np.abs(np.arange(-reach, reach + 1)) / width_days)
    smoothed = np.maximum(scipy.signal.fftconvolve(active.toarray(), kernel[None, :], mode="same", axes=1), 0.0)
    scores = np.asarray((counts.T @ smoothed.astype(np.float32).T).T, dtype=np.float32)
    return scores / np.maximum(np.bincount(train.items, minlength=train.n_items), 1).astype(np.float32) ** beta


class Lab:
    """One split's held-out users, their served queries, seen items and relevant items."""

    def __init__(self, split: Split, catalog: Catalog) -> None:
        self.split, self.catalog = split, catalog
        self.users = held_out_users(split)
        histories = Histories(split.train)
        self.queries = [histories.query(int(u)) for u in self.users]
        self.seen = split.train.to_csr()[self.users]
        self.relevant = relevant_of(split, self.users)

    def ndcg(self, scores: np.ndarray) -> np.ndarray:
        return per_user_ndcg(top_k(scores, 10, self.seen), self.relevant, 10)

    def ease_local(self, **params) -> tuple[TimeLocalEASE, np.ndarray]:
        model = TimeLocalEASE(**params).fit(self.split.train, self.catalog)
        return model, score_queries(model, self.queries, self.split.train.n_items)


def context(lab: Lab) -> None:
    _, local = lab.ease_local()
    base = normalised(local)
    counts = np.bincount(lab.split.train.items, minlength=lab.split.train.n_items).astype(np.float32)
    print(f"ease_local alone {lab.ndcg(local).mean():.4f}, all-time popularity alone "
          f"{lab.ndcg(np.tile(counts, (len(lab.users), 1))).mean():.4f}")
    for width in (1, 7, 30, 180, 365, 1000):
        for beta in (0.0, 0.5, 1.0):
            for gamma in (0.0, 0.5):
                scores = context_scores(lab.split.train, lab.users, width, beta, gamma)
                blends = [round(float(lab.ndcg(base + w * normalised(scores)).mean()), 4) for w in (0.05, 0.1, 0.25, 0.5)]
                print(f"context {width} d, beta {beta}, gamma {gamma}: alone {lab.ndcg(scores).mean():.4f}, "
                      f"ease_local + w x it (w 0.05/0.1/0.25/0.5) {blends}", flush=True)


def recent(data: Interactions, catalog: Catalog) -> None:
    for method in SPLITS:
        targets = targets_split(make_split(data, method, **SPLITS[method]).train)
        labs = {name: Lab(part, catalog) for name, part in targets.items()}
        model = TimeLocalEASE().fit(next(iter(targets.values())).train, catalog)
        for name, lab in labs.items():
            longer = np.array([len(q.history) for q in lab.queries]) > 10
            row = []
            for weight in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 100.0):
                model.recent_weight = weight
                per_user = lab.ndcg(score_queries(model, lab.queries, lab.split.train.n_items))
                row.append(f"{weight}: {per_user.mean():.4f} (over 10 items {per_user[longer].mean():.4f})")
            print(f"{method} / {name} ({len(lab.users)} users): " + "; ".join(row), flush=True)


def edlae(lab: Lab) -> None:
    gram = time_local_gram(lab.split.train, 3600.0, 0.0)
    model, _ = lab.ease_local()
    for p, lam in ((0.0, 100.0), (0.0, 300.0), (0.0, 1000.0), (0.1, 150.0), (0.25, 50.0)):
        start = time.perf_counter()
        model.weights = ease_dense(gram, lam + p / (1 - p) * np.diag(gram)) if p else ease_dense(gram, lam)
        scores = score_queries(model, lab.queries, lab.split.train.n_items)
        print(f"p {p}, lambda {lam}: {lab.ndcg(scores).mean():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


def adjacent_counts(users: np.ndarray, items: np.ndarray, n_items: int, window: int, decay: bool) -> sp.csr_matrix:
    """F (items x items): F[a, c] = how often c came within `window` positions AFTER a in one
    user's time-ordered sequence (weight 1, or 1 / offset with `decay`)."""
    rows, cols, vals = [], [], []
    for offset in range(1, window + 1):
        same = users[offset:] == users[:-offset]
        rows.append(items[:-offset][same]), cols.append(items[offset:][same])
        vals.append(np.full(int(same.sum()), 1.0 / offset if decay else 1.0, np.float32))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n_items, n_items))


def row_normalised(m: sp.csr_matrix, power: float = 1.0) -> sp.csr_matrix:
    sums = np.asarray(m.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags((1.0 / np.maximum(sums, 1e-9) ** power).astype(np.float32)) @ m)


def user_gaps(users: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Each event's gap to the user's next event (0 for the last), relative to the user's median gap."""
    gaps = np.r_[times[1:] - times[:-1], 0.0]
    gaps[np.r_[users[1:] != users[:-1], True]] = 0.0
    bounds = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1, len(users)]
    rel = np.zeros_like(gaps)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        inner = gaps[lo:hi - 1]
        med = np.median(inner[inner > 0]) if (inner > 0).any() else 1.0
        rel[lo:hi - 1] = inner / max(med, 1.0)
    return rel


def adjacency_similarity(users: np.ndarray, items: np.ndarray, n_items: int, window: int, beta: float) -> sp.csr_matrix:
    """Both directions' adjacency counts S = F + F^T, divided by degree^0.5 (the history item's
    side) and degree^beta (the candidate's side)."""
    forward = adjacent_counts(users, items, n_items, window, decay=False)
    both = (forward + forward.T).tocsr()
    degree = np.maximum(np.asarray(both.sum(axis=1)).ravel(), 1.0)
    return sp.csr_matrix(sp.diags(degree ** -0.5) @ both @ sp.diags(degree ** -beta))


#: Settings fixed on the random split's validation (docs/benchmarks.md, issue 18, eighth session):
#: (window, beta, blend weight on the normalised scores).
FIXED = ((5, 0.5, 0.5), (1, 0.5, 0.25), (5, 0.25, 0.1))


def adjacency(lab: Lab, fixed: bool) -> None:
    train = lab.split.train
    users, items, times = first_events(train)
    n, m = train.n_items, len(lab.users)
    _, local = lab.ease_local()
    base = normalised(local)
    local_ndcg = lab.ndcg(local)
    print(f"ease_local alone {local_ndcg.mean():.4f}", flush=True)
    picked = np.isin(users, lab.users)
    row_of = np.full(train.n_users, -1, np.int64)
    row_of[lab.users] = np.arange(m)
    query_one = sp.csr_matrix((np.ones(int(picked.sum()), np.float32), (row_of[users[picked]], items[picked])), shape=(m, n))
    if fixed:
        ease = EASE(regularization=300.0).fit(train, lab.catalog)
        ease_ndcg = lab.ndcg(score_queries(ease, lab.queries, n))
        print(f"EASE (lambda 300) {ease_ndcg.mean():.4f}; ease_local / EASE {ratio_interval(local_ndcg, ease_ndcg)}")
        for keep in (128, 256, 512):
            model = AdjacencyKNN(window=1, beta=0.5, keep=keep).fit(train, lab.catalog)
            adj = score_queries(model, lab.queries, n)
            blend = lab.ndcg(base + 0.25 * normalised(adj))
            print(f"models/adjacency.py window 1, beta 0.5, keep {keep}: alone {lab.ndcg(adj).mean():.4f}, "
                  f"blend (w 0.25) {blend.mean():.4f}; blend / ease_local {ratio_interval(blend, local_ndcg)}", flush=True)
        for window, beta, weight in FIXED:
            adj = np.asarray((query_one @ adjacency_similarity(users, items, n, window, beta)).todense(), np.float32)
            blend = lab.ndcg(base + weight * normalised(adj))
            print(f"window {window}, beta {beta}, w {weight}: alone {lab.ndcg(adj).mean():.4f}, blend {blend.mean():.4f}; "
                  f"blend / ease_local {ratio_interval(blend, local_ndcg)}, blend / EASE {ratio_interval(blend, ease_ndcg)}",
                  flush=True)
        return
    gaps = user_gaps(users, times)
    ws = (0.05, 0.1, 0.25, 0.5, 1.0)

    def report(label: str, scores: np.ndarray) -> None:
        blends = [round(float(lab.ndcg(base + w * normalised(scores)).mean()), 4) for w in ws]
        print(f"{label}: alone {lab.ndcg(scores).mean():.4f}, ease_local + w x it (w {ws}) {blends}", flush=True)

    # The query: each of the user's training events (distinct items), weight 1 or by its gaps.
    before = np.r_[0.0, gaps[:-1]] * np.r_[False, users[1:] == users[:-1]]
    gap_weight = np.log1p(gaps + before)[picked].astype(np.float32)
    query_gap = sp.csr_matrix((gap_weight, (row_of[users[picked]], items[picked])), shape=(m, n))
    for window in (1, 2, 3, 5, 10):
        for beta in (0.25, 0.5):
            sim = adjacency_similarity(users, items, n, window, beta)
            for qname, query in (("w1", query_one), ("gap", query_gap)):
                report(f"adjacency window {window}, beta {beta}, query {qname}",
                       np.asarray((query @ sim).todense(), np.float32))
    # Bridging: consecutive training pairs (a, b) of the held-out users.
    nxt = np.flatnonzero(picked[:-1] & (users[1:] == users[:-1]))
    a, b = items[nxt], items[nxt + 1]
    owner = row_of[users[nxt]]
    for window in (1, 2, 3):
        forward = adjacent_counts(users, items, n, window, decay=True)
        p_next, p_prev = row_normalised(forward), row_normalised(forward.T.tocsr())
        product = p_next[a].multiply(p_prev[b]).tocsr()
        for hname, h in (("1", np.ones(len(nxt))), ("log1p gap", np.log1p(gaps[nxt])), ("gap>1", (gaps[nxt] > 1.0) * 1.0)):
            agg = sp.csr_matrix((h.astype(np.float32), (owner, np.arange(len(nxt)))), shape=(m, len(nxt)))
            report(f"bridging window {window}, h {hname}", np.asarray((agg @ product).todense(), np.float32))


def band_density(x: sp.csr_matrix, values: np.ndarray, width: float) -> np.ndarray:
    """(users x items) Gaussian kernel density, at each item's value, of the values of the user's
    items (binned into 64 bins; items without a value get the density's mean)."""
    known = np.isfinite(values)
    lo, hi = np.nanmin(values), np.nanmax(values)
    bins = np.full(len(values), -1)
    bins[known] = np.minimum(((values[known] - lo) / max(hi - lo, 1e-9) * 64).astype(int), 63)
    onehot = sp.csr_matrix((np.ones(int(known.sum()), np.float32), (np.flatnonzero(known), bins[known])), shape=(len(values), 64))
    hist = np.asarray((x @ onehot).todense(), np.float32)
    centres = lo + (np.arange(64) + 0.5) * (hi - lo) / 64
    kernel = np.exp(-0.5 * ((centres[:, None] - centres[None, :]) / width) ** 2).astype(np.float32)
    smooth = hist @ kernel
    smooth /= np.maximum(smooth.sum(axis=1, keepdims=True), 1e-9)
    out = np.where(known[None, :], smooth[:, np.maximum(bins, 0)], smooth.mean(axis=1, keepdims=True))
    return out.astype(np.float32)


def profile(lab: Lab, fixed: bool) -> None:
    import pandas as pd
    from pulserec.ingest.movielens import movielens_path

    train = lab.split.train
    n = train.n_items
    _, local = lab.ease_local()
    base = normalised(local)
    local_ndcg = lab.ndcg(local)
    print(f"ease_local alone {local_ndcg.mean():.4f}", flush=True)
    x = sp.csr_matrix(lab.seen, dtype=np.float32)
    x.data[:] = 1.0
    counts = np.bincount(train.items, minlength=n).astype(np.float64)
    movies = pd.read_csv(movielens_path(None) / "movies.csv", dtype={"movieId": str})
    index = [train.item_ids.get(m) for m in movies.movieId]
    rows = [(i, r) for r, i in enumerate(index) if i is not None]
    year = np.full(n, np.nan)
    years = movies.title.str.extract(r"\((\d{4})\)\s*$")[0].astype(float).to_numpy()
    genres = movies.genres.str.get_dummies("|").to_numpy(np.float32)
    item_genres = np.zeros((n, genres.shape[1]), np.float32)
    for i, r in rows:
        year[i], item_genres[i] = years[r], genres[r]
    shares = np.asarray(x @ item_genres) / np.maximum(np.asarray(x.sum(axis=1)), 1.0)
    genre_fit = (shares @ item_genres.T) / np.maximum(item_genres.sum(axis=1), 1.0)[None, :]
    if fixed:
        fit = np.maximum(genre_fit.astype(np.float32), 1e-9)
        adj = normalised(score_queries(AdjacencyKNN(window=1, beta=0.5, keep=256).fit(train, lab.catalog), lab.queries, n))
        for label, scores in (("ease_local x genre^0.1", base * fit ** 0.1),
                              ("ease_local + 0.25 genre", base + 0.25 * normalised(genre_fit)),
                              ("ease_local + 0.25 adjacency", base + 0.25 * adj),
                              ("(ease_local + 0.25 adjacency) x genre^0.1", (base + 0.25 * adj) * fit ** 0.1)):
            per_user = lab.ndcg(scores)
            print(f"{label}: {per_user.mean():.4f}; / ease_local {ratio_interval(per_user, local_ndcg)}", flush=True)
        return
    parts = {f"log-popularity width {w}": band_density(x, np.log1p(counts), w) for w in (0.25, 0.5, 1.0)}
    parts.update({f"year width {w}": band_density(x, year, w) for w in (2.0, 5.0, 10.0)})
    parts["genre shares"] = genre_fit.astype(np.float32)
    for label, part in parts.items():
        products = [round(float(lab.ndcg(base * np.maximum(part, 1e-9) ** g).mean()), 4) for g in (0.1, 0.25, 0.5, 1.0)]
        sums = [round(float(lab.ndcg(base + w * normalised(part)).mean()), 4) for w in (0.05, 0.1, 0.25)]
        print(f"{label}: alone {lab.ndcg(part).mean():.4f}, x density^g (g 0.1/0.25/0.5/1) {products}, "
              f"+ w x it (0.05/0.1/0.25) {sums}", flush=True)


def adjgram(lab: Lab, fixed: bool) -> None:
    from pulserec.models.adjacency import adjacent_counts as counts_of

    train = lab.split.train
    users, items, _ = first_events(train)
    gram = time_local_gram(train, 3600.0, 0.0)
    model, local = lab.ease_local()
    local_ndcg = lab.ndcg(local)
    print(f"ease_local alone {local_ndcg.mean():.4f}", flush=True)
    settings = ((1, 2.0),) if fixed else ((1, 1.0), (1, 4.0), (3, 2.0))
    for window, alpha in settings:
        start = time.perf_counter()
        forward = counts_of(users, items, train.n_items, window)
        model.weights = ease_dense(gram + alpha * (forward + forward.T).toarray(), 300.0)
        per_user = lab.ndcg(score_queries(model, lab.queries, train.n_items))
        print(f"window {window}, alpha {alpha}: {per_user.mean():.4f}; / ease_local {ratio_interval(per_user, local_ndcg)} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)


def cost(lab: Lab, fixed: bool) -> None:
    model = AdjacencyKNN().fit(lab.split.train, lab.catalog)
    n = lab.split.train.n_items
    lengths = np.array([len(model._history(q)) for q in lab.queries])
    for round_ in range(3):
        took = []
        for query in lab.queries:
            start = time.perf_counter()
            model.score(query, n)
            took.append(time.perf_counter() - start)
        ms = np.array(took) * 1e3
        print(f"round {round_}: {len(ms)} requests, p50 {np.percentile(ms, 50):.3f} ms, p99 {np.percentile(ms, 99):.3f} ms, "
              f"max {ms.max():.3f} ms (history items p50 {np.median(lengths):.0f}, max {lengths.max()})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("context", "recent", "edlae", "adjacency", "profile", "adjgram", "cost"))
    parser.add_argument("--head-fraction", type=float, default=1.0, help="the first FRACTION of the log only")
    parser.add_argument("--tail-fraction", type=float, default=1.0, help="the last FRACTION of the log only")
    parser.add_argument("--split", choices=tuple(SPLITS), default="random", help="the split carved (adjacency)")
    parser.add_argument("--fixed", action="store_true", help="adjacency: only the settings fixed beforehand (FIXED)")
    parser.add_argument("--test", action="store_true", help="the random split's test part (settings fixed on validation)")
    args = parser.parse_args(argv)
    ratings = read_ratings(None)
    ratings = ratings.iloc[: int(len(ratings) * args.head_fraction)]
    ratings = ratings.iloc[len(ratings) - int(len(ratings) * args.tail_fraction):].reset_index(drop=True)
    data = Interactions.from_frame(ratings, DEFAULT_EVENT_WEIGHTS)
    catalog = Catalog()
    for record in read_movies(None):
        catalog.upsert(record)
    if args.what == "recent":
        recent(data, catalog)
        return 0
    split = make_split(data, args.split, **SPLITS[args.split])
    lab = Lab(split if args.test else validation_split(split.train, args.split, **SPLITS[args.split]), catalog)
    if args.what in ("adjacency", "profile", "adjgram", "cost"):
        {"adjacency": adjacency, "profile": profile, "adjgram": adjgram, "cost": cost}[args.what](lab, args.test or args.fixed)
    else:
        (context if args.what == "context" else edlae)(lab)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
