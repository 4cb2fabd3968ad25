"""Learning a blend's weights on validation (models/hybrid.py, models/auto.py).

:func:`search_weights` is a coordinate search that never ends below the best single
component. :class:`TargetSearch` runs it on a validation split with one or several targets
(the next item, long-term taste, the latest period: evaluation/split.py `targets_split`) and,
optionally, one weight vector per bucket of the query's history length: a user with a handful
of events is served best by what is popular now, a returning user by their taste and their
latest items (measured on MovieLens' validation splits: docs/benchmarks.md, issue 18). The
objective is a weighted mean over targets of the blend's metric relative to the best single
component on that target, so no target's scale decides (1.0 = as good as the best input on
every target), each target weighted by how precisely the validation measures it
(:func:`target_weights`), so no target's noise decides either."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from pulserec.evaluation.metrics import discounts, hit_matrix

#: Metrics a per-user search can compute (per user, then averaged like ranking_metrics).
PER_USER_METRICS = ("ndcg", "recall", "hitrate")
#: How much each target counts in the objective: its ratio (blend / best single on that target)
#: weighted by the precision of that ratio, (relative standard error of the best single's mean
#: metric)^-PRECISION_POWER; 0 weighs the targets equally. The next item is one event per user
#: (NDCG ~0.03-0.05, ~15% relative error over 600 users), the taste a tenth of their events
#: (~4%): weighed equally, the search chased the next item's noise with recent item-kNN and lost
#: the taste the random split asks for (0.79x the best peer on the last 60% of MovieLens'
#: timeline); weighed by precision the worst of nine split x data set cases went 0.79 -> 0.91
#: (docs/benchmarks.md, issue 18, seventh session; benchmarks/chooser_lab.py).
PRECISION_POWER = 1.0


def search_weights(
    objective: Callable[[np.ndarray], float], n: int, grid: Sequence[float], rounds: int,
    feasible: Callable[[np.ndarray], bool] | None = None, required: Sequence[int] = (),
) -> tuple[np.ndarray, float, list[float]]:
    """Blend weights maximising `objective`, never worse than the best single component.

    Every component is scored alone first (weight 1, the others 0); the search starts from the
    best of those and of the equal-weight blend, and a coordinate search over `grid` only
    accepts strict improvements. So on the validation split the blend is at least as good as
    its best input (the fall-back is that input alone). With `feasible` (a latency budget:
    models/latency_budget.py) only weights it accepts are considered: the start is the best
    feasible single component. `required` components never get weight 0 (the default's online
    item-kNN: the part that reflects every event): each start holds them at least at the grid's
    smallest positive value, and so does every trial; the blend is then at least as good as the
    best single component with the required ones beside it at that weight. Returns (weights,
    score, singles)."""
    held = np.asarray(required, dtype=np.int64)
    floor = min((float(g) for g in grid if g > 0), default=1.0)

    def allowed(weights: np.ndarray) -> bool:
        return bool((weights[held] > 0).all()) and (feasible is None or feasible(weights))

    singles = [objective(np.eye(n)[c]) for c in range(n)]
    weights, best = None, -np.inf
    for c in sorted(range(n), key=lambda c: -singles[c]):  # best single first (the first of equals)
        start = np.eye(n)[c]
        start[held] = np.maximum(start[held], floor)
        if allowed(start):
            score = singles[c] if start[c] == 1 and start.sum() == 1 else objective(start)
            if score > best + 1e-9 or weights is None:
                weights, best = start, score
    if weights is None:  # nothing feasible: the required parts alone (else the best single)
        weights = np.eye(n)[held].sum(axis=0) if len(held) else np.eye(n)[int(np.argmax(singles))]
        best = objective(weights)
    if n > 1 and allowed(np.ones(n)):
        equal = objective(np.ones(n))
        if equal > best + 1e-9:
            weights, best = np.ones(n), equal
    for _ in range(rounds):
        improved = False
        for c in range(n):
            for value in grid:
                if value == weights[c]:
                    continue
                trial = weights.copy()
                trial[c] = value
                if not trial.any() or not allowed(trial):
                    continue
                result = objective(trial)
                if result > best + 1e-9:
                    best, weights, improved = result, trial, True
        if not improved:
            break
    return weights, best, singles


def history_bucket(n_history: np.ndarray | int, edges: Sequence[int]) -> np.ndarray | int:
    """The bucket of a history of `n_history` distinct items: 0 up to edges[0] items, 1 up to
    edges[1], ... (a user without history is in bucket 0)."""
    return np.searchsorted(np.asarray(edges, dtype=np.int64), n_history, side="left")


#: A user's candidates in the search: the union of every component's top POOL_DEPTH unseen items.
#: A blend of non-negative weights ranks an item first only where some component ranks it
#: high, so its top 10 lies there in practice; the search then scores ~C x 100 items a user
#: instead of the whole catalogue (MovieLens: 9.7k items, ~0.9 s -> a few ms a trial).
POOL_DEPTH = 100


def candidate_pools(parts: np.ndarray, seen: sp.csr_matrix, depth: int = POOL_DEPTH
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(items: users x L, their scores: components x users x L, invalid: users x L) where each
    row holds every component's top `depth` unseen items (invalid: a repeat or a seen item)."""
    n_components, _, n_items = parts.shape
    depth = max(1, min(depth, n_items - 1)) if n_items > 1 else 1
    seen_rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    inside = seen.indices < n_items
    tops = []
    for c in range(n_components):
        scores = np.array(parts[c], dtype=np.float32)
        scores[seen_rows[inside], seen.indices[inside]] = -np.inf
        tops.append(np.argpartition(-scores, depth - 1, axis=1)[:, :depth] if n_items > 1 else
                    np.zeros((len(scores), 1), dtype=np.int64))
    items = np.sort(np.concatenate(tops, axis=1), axis=1)
    invalid = np.zeros(items.shape, dtype=bool)
    invalid[:, 1:] = items[:, 1:] == items[:, :-1]
    invalid |= hit_matrix(items, seen)
    pooled = np.stack([np.take_along_axis(parts[c], items, axis=1) for c in range(n_components)])
    return items, pooled, invalid


def target_weights(best_per_user: Mapping[str, np.ndarray], power: float = PRECISION_POWER) -> dict[str, float]:
    """Each target's weight in the objective (summing to 1): the relative standard error of the
    best single component's mean on it (per-user values, NaN: no held-out item) to -`power`.
    Where some target's error cannot be estimated (fewer than two users, nothing scored, no
    spread) every target counts alike."""
    errors = {}
    for target, values in best_per_user.items():
        values = values[np.isfinite(values)]
        mean = values.mean() if len(values) else 0.0
        errors[target] = values.std() / np.sqrt(len(values)) / mean if len(values) > 1 and mean > 0 else np.nan
    known = [e for e in errors.values() if np.isfinite(e) and e > 0]
    if power == 0 or len(known) < len(errors):
        return {t: 1.0 / len(errors) for t in errors}
    raw = {t: e ** -power for t, e in errors.items()}
    total = sum(raw.values())
    return {t: w / total for t, w in raw.items()}


class TargetSearch:
    """Blend weights learned on cached validation scores.

    `parts` (components x users x items) are the components' normalised scores for the
    validation users, `seen` (users x items) what they may not be recommended, `relevant` one
    (users x items) matrix per target, `buckets` each user's history bucket."""

    def __init__(self, parts: np.ndarray, seen: sp.csr_matrix, relevant: Mapping[str, sp.csr_matrix],
                 buckets: np.ndarray, metric: str = "ndcg@10", precision: float = PRECISION_POWER) -> None:
        buckets = np.asarray(buckets, dtype=np.int64)
        # Users ordered by bucket, so that a bucket's rows are a slice (a view, not a copy per trial).
        order = np.argsort(buckets, kind="stable")
        items, pooled, invalid = candidate_pools(parts[:, order], seen[order])
        self._setup(pooled, invalid, {t: hit_matrix(items, m[order]) & ~invalid for t, m in relevant.items()},
                    {t: m[order].getnnz(axis=1) for t, m in relevant.items()}, buckets[order], metric, precision)

    @classmethod
    def pooled(cls, parts: np.ndarray, invalid: np.ndarray, hits: Mapping[str, np.ndarray],
               n_relevant: Mapping[str, np.ndarray], buckets: np.ndarray, metric: str = "ndcg@10",
               precision: float = PRECISION_POWER) -> TargetSearch:
        """A search over pools already drawn (:func:`candidate_pools`): `parts` components x users x
        L, `hits` per target users x L; users in bucket order (benchmarks/chooser_lab.py keeps pools)."""
        search = cls.__new__(cls)
        search._setup(parts, invalid, hits, n_relevant, np.asarray(buckets, dtype=np.int64), metric, precision)
        return search

    def _setup(self, parts: np.ndarray, invalid: np.ndarray, hits: Mapping[str, np.ndarray],
               n_relevant: Mapping[str, np.ndarray], buckets: np.ndarray, metric: str, precision: float) -> None:
        name, _, k = metric.partition("@")
        if name not in PER_USER_METRICS or not k.isdigit():
            raise ValueError(f"metric must be one of {', '.join(PER_USER_METRICS)} at a cut-off, e.g. ndcg@10")
        if not 0 <= precision < np.inf:
            raise ValueError("precision must be >= 0 (0: every target counts alike)")
        if len(buckets) > 1 and (np.diff(buckets) < 0).any():
            raise ValueError("users must be ordered by bucket")
        self.kind, self.k = name, int(k)
        self.parts, self.invalid, self.hits, self.n_relevant, self.buckets = parts, invalid, dict(hits), dict(n_relevant), buckets
        self.n_buckets = int(self.buckets.max()) + 1 if len(self.buckets) else 1
        bounds = np.searchsorted(self.buckets, np.arange(self.n_buckets + 1))
        self.rows = [slice(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]
        self.everyone = slice(0, len(self.buckets))
        singles = [self._per_user(row, self.everyone) for row in np.eye(len(parts))]
        self.single_targets = [self._means(per_user) for per_user in singles]
        self.best = {t: max(s[t] for s in self.single_targets) or 1.0 for t in self.hits}
        self.target_weights = target_weights({t: singles[int(np.argmax([s[t] for s in self.single_targets]))][t]
                                              for t in self.hits}, precision)

    def _per_user(self, weights: np.ndarray, rows: slice) -> dict[str, np.ndarray]:
        """Each target's metric of `rows`' users under `weights` (NaN: the user has none held out there)."""
        blended = np.zeros((rows.stop - rows.start, self.parts.shape[2]), dtype=np.float32)
        for c in np.flatnonzero(weights):
            blended += np.float32(weights[c]) * self.parts[c, rows]
        blended[self.invalid[rows]] = -np.inf
        k = min(self.k, blended.shape[1])
        top = np.argpartition(-blended, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(blended, top, axis=1), axis=1, kind="stable"), 1)
        out = {}
        for target, hit in self.hits.items():
            n_rel = self.n_relevant[target][rows]
            hits = np.take_along_axis(hit[rows], top, axis=1)
            if self.kind == "ndcg":
                ideal = np.cumsum(discounts(self.k))[np.clip(n_rel, 1, self.k) - 1]
                value = (hits * discounts(self.k)[:k]).sum(axis=1) / ideal
            elif self.kind == "recall":
                value = hits.sum(axis=1) / np.maximum(n_rel, 1)
            else:
                value = hits.any(axis=1).astype(np.float64)
            out[target] = np.where(n_rel > 0, value, np.nan)
        return out

    @staticmethod
    def _means(per_user: Mapping[str, np.ndarray]) -> dict[str, float]:
        return {t: float(np.nanmean(v)) if np.isfinite(v).any() else 0.0 for t, v in per_user.items()}

    def _objective(self, means: Mapping[str, float]) -> float:
        if len(means) == 1:
            return next(iter(means.values()))
        return float(sum(self.target_weights[t] * means[t] / self.best[t] for t in means))

    def target_scores(self, weights: np.ndarray) -> dict[str, float]:
        """Each target's metric under `weights` (one vector, or one per bucket)."""
        return self._means(self._all_users(np.atleast_2d(weights)))

    def _all_users(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        out = {t: np.full(len(self.buckets), np.nan) for t in self.hits}
        for b, rows in enumerate(self.rows):
            for t, values in self._per_user(weights[min(b, len(weights) - 1)], rows).items():
                out[t][rows] = values
        return out

    def search(self, grid: Sequence[float], rounds: int, feasible: Callable[[np.ndarray], bool] | None = None,
               required: Sequence[int] = ()) -> tuple[np.ndarray, float, list[float]]:
        """(weights: buckets x components, objective, each component's objective alone).

        One vector for all buckets first (:func:`search_weights`: never below the best single
        component), then each bucket's vector in turn, accepting strict improvements only;
        with `feasible`, only weight matrices (buckets x components) it accepts; the `required`
        components keep a weight > 0 in every bucket."""
        n = self.parts.shape[0]
        allowed = feasible or (lambda weights: True)
        shared, best, singles = search_weights(lambda w: self._objective(self._means(self._per_user(w, self.everyone))),
                                               n, grid, rounds, lambda w: allowed(np.tile(w, (self.n_buckets, 1))),
                                               required)
        weights = np.tile(shared, (self.n_buckets, 1))
        if self.n_buckets == 1:
            return weights, best, singles
        current = self._all_users(weights)
        for _ in range(rounds):
            improved = False
            for b, rows in enumerate(self.rows):
                for c in range(n):
                    for value in grid:
                        trial = weights[b].copy()
                        trial[c] = value
                        if value == weights[b, c] or not trial.any() or (value <= 0 and c in required):
                            continue
                        if feasible is not None and not feasible(np.vstack([weights[:b], trial, weights[b + 1:]])):
                            continue
                        candidate = {t: v.copy() for t, v in current.items()}
                        for t, values in self._per_user(trial, rows).items():
                            candidate[t][rows] = values
                        result = self._objective(self._means(candidate))
                        if result > best + 1e-9:
                            best, current, improved = result, candidate, True
                            weights[b] = trial
            if not improved:
                break
        return weights, best, singles
