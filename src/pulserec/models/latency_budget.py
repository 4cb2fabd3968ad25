"""What a blend's parts cost a request, priced at fit time, and which blends fit a latency budget.

The served default (`auto`, models/auto.py) is a blend of several models, and each request pays
every part with a weight for the user's history bucket: its scores, their normalisation and,
for the winning items, its explanation. A part that lifts validation by a fraction of a percent
may cost milliseconds (a dense EASE gathers history x catalogue floats; SASRec runs a torch
forward, twice with its explanation). So before the weights are searched, each candidate is
PRICED: :func:`price` times it on a sample of the validation queries, one query a call as the
server asks, in the calling thread's CPU time (the minimum of REPEATS calls): what the request's
work costs, which other processes' load on the box does not inflate as it does a wall clock (at
a load of 9 on 2 cores a 1 ms call reads 3-10 ms of wall time). Work a part hands to other
threads is not counted: serve with one BLAS / torch thread (OPENBLAS_NUM_THREADS, torch_threads),
as a small box should. A candidate whose request costs the same untrained
(:class:`PricedUntrained`: SASRec's forward) is priced before its training and not trained when
it fits no blend within the budget (its validation fit took minutes on 2 cores). The weight search
(models/blend_search.py) then only accepts blends whose priced cost fits the :class:`Budget`
(:meth:`Budget.admits`, a pure function of the prices): a part whose gain cannot be had within
the budget is left out, whatever its validation score.

The budget is the WHOLE request's when the layer that serves requests tells the blend what a
request costs besides its parts (`Hybrid.request_overhead`: recommend/request_cost.py measures
the query, filters, social and segment parts, top-n, explanation and rendering at fit): the
parts get the budget less that overhead (:meth:`Budget.less`). Without it the budget bounds the
parts alone.

Prices are per part, and a served request costs more than its parts' sum and a flat request's
overhead: a fresh user's first request gathers the long-term part, aligned parts map ids, the
blend makes a dense pass per part (MovieLens, quiet box: priced 1.58 ms p50, served 1.66-2.56).
So the chosen blend is VERIFIED as served when the serving layer can measure it
(`Hybrid.request_meter`): :func:`verified_choice` serves the choice, and while its whole request
misses the budget it shrinks the parts' budget by the excess (:meth:`Budget.backed_off`) and
searches again, a bounded number of rounds, then serves the cheapest admitted blend (the
required parts alone)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from pulserec.models.base import Query, Recommender, scored
from pulserec.models.blend import normalised
from pulserec.models.long_term_cache import LongTermCache

#: Validation queries a candidate is priced on (a seeded sample): enough for a p99 over users
#: (2 of them above it), few enough that pricing stays ~1-2 s a candidate.
PRICE_QUERIES = 200
#: Timed calls per query; the minimum is kept (another process's work only ever adds).
REPEATS = 2
#: Items explained per priced request (the slate the server explains).
SLATE = 10
#: The least a whole-request budget leaves for the parts when the request's own work takes it
#: all: then only the required parts fit (Budget.admits), as cheap as they come.
MIN_PARTS_MS = 1e-6
#: What a weight search returns (models/hybrid.py: weights, validation scores).
Chosen = TypeVar("Chosen")
#: Searches whose served blend may miss the whole-request budget before the cheapest admitted
#: blend (the required parts alone) is served: each round fits and serves a blend (seconds).
VERIFY_ROUNDS = 3
#: ms a back-off takes off the parts' budget beyond the measured excess: a blend that misses by
#: a hair is not chosen again for a price a hair lower.
BACKOFF_STEP_MS = 0.05


@runtime_checkable
class PricedUntrained(Protocol):
    """A model whose request costs the same trained or not (a torch network's forward: the same
    shapes either way): it can be priced before minutes of training are spent on it."""

    def untrained(self) -> Recommender:
        """The same model (same sizes) set up to fit without training."""
        ...


@dataclass(frozen=True)
class Budget:
    """The blend's parts may cost at most `p50_ms` / `p99_ms` per request over the priced
    queries (0: that percentile is not bounded)."""

    p50_ms: float
    p99_ms: float

    def __post_init__(self) -> None:
        for value in (self.p50_ms, self.p99_ms):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"a latency budget is 0 (none) or a positive number of ms, not {value!r}")

    def less(self, overhead: Sequence[float] | None) -> Budget:
        """What is left for the parts of a whole-request budget once the request's own work
        (`overhead`: its p50, p99 ms; None: not measured, the budget is the parts') is paid; a
        bounded percentile never drops to 0 (unbounded): at least MIN_PARTS_MS is left."""
        if overhead is None:
            return self
        return Budget(*(max(limit - float(cost), MIN_PARTS_MS) if limit else 0.0
                        for limit, cost in zip((self.p50_ms, self.p99_ms), overhead)))

    def backed_off(self, served: Sequence[float], whole: Budget, step: float = BACKOFF_STEP_MS) -> Budget:
        """This (parts') budget less what a served blend cost (`served`: its whole request's p50,
        p99 ms) beyond the whole-request budget `whole`, and `step`, for each bounded percentile
        it missed; at least MIN_PARTS_MS is left."""
        return Budget(*(max(part - (float(cost) - limit) - step, MIN_PARTS_MS) if limit and cost > limit else part
                        for part, limit, cost in zip((self.p50_ms, self.p99_ms), (whole.p50_ms, whole.p99_ms), served)))

    def floor(self) -> Budget:
        """The least bounded budget: only the required parts (or the cheapest part) are admitted."""
        return Budget(*(MIN_PARTS_MS if limit else 0.0 for limit in (self.p50_ms, self.p99_ms)))

    def fits(self, p50: float, p99: float) -> bool:
        return (not self.p50_ms or p50 <= self.p50_ms) and (not self.p99_ms or p99 <= self.p99_ms)

    def affords(self, cost: np.ndarray, buckets: np.ndarray) -> bool:
        """Whether a part priced `cost` (ms per priced query) fits in some blend: alone, for at
        least one history bucket (every other part only adds to a query's cost)."""
        ones = np.eye(int(buckets.max()) + 1 if len(buckets) else 1)
        return any(self.fits(*blend_cost(row[:, None], cost[:, None], buckets)) for row in ones)

    def admits(self, costs: np.ndarray, buckets: np.ndarray, barred: Sequence[int] = (),
               required: Sequence[int] = ()) -> Callable[[np.ndarray], bool]:
        """Whether a weight matrix (buckets x parts) fits, given each priced query's cost per
        part (`costs`: queries x parts, ms) and its history bucket; a `barred` part (priced out
        before its training) never does. When the `required` parts alone (in every bucket) do
        not fit, only they are admitted, alone: a default must serve them. Without required
        parts, when not even one part alone fits, only the cheapest part alone is admitted (a
        default must serve something)."""
        open_ = np.setdiff1d(np.arange(costs.shape[1]), np.asarray(barred, dtype=np.int64))
        held = np.asarray(required, dtype=np.int64)

        def only(parts: np.ndarray) -> Callable[[np.ndarray], bool]:
            others = np.setdiff1d(np.arange(costs.shape[1]), parts)
            return lambda weights: bool(np.atleast_2d(weights)[:, parts].all()) and not np.atleast_2d(weights)[:, others].any()

        def clear(weights: np.ndarray) -> bool:
            return not np.atleast_2d(weights)[:, np.asarray(barred, dtype=np.int64)].any()

        singles = np.eye(costs.shape[1])
        if len(held) and not self.fits(*blend_cost(singles[held].sum(axis=0)[None], costs, buckets)):
            return only(held)
        if not len(held) and not any(self.fits(*blend_cost(singles[k][None], costs, buckets)) for k in open_):
            cheapest = int(open_[np.argmin(np.percentile(costs[:, open_], 50, axis=0))]) if costs.size and len(open_) else 0
            return only(np.array([cheapest]))
        return lambda weights: clear(weights) and self.fits(*blend_cost(weights, costs, buckets))


def verified_choice(choose: Callable[[Budget], Chosen], measure: Callable[[Chosen], Sequence[float]], whole: Budget,
                    parts: Budget, rounds: int = VERIFY_ROUNDS, describe: Callable[[Chosen], object] = lambda chosen: None,
                    ) -> tuple[Chosen, list[float], list[dict[str, object]]]:
    """The blend `choose` finds within a parts' budget whose served request (`measure`: its
    whole request's p50, p99 ms; the choice is left served) fits the `whole` budget: `parts` first,
    then shrunk by each miss (:meth:`Budget.backed_off`) for at most `rounds` searches, then the
    floor budget's (the required parts alone), served whatever it costs. Returns (the choice, its
    served ms, each round's parts' budget, served ms and `describe`d choice)."""
    tried: list[dict[str, object]] = []

    def attempt(budget: Budget, digits: int = 3) -> tuple[Chosen, list[float]]:
        chosen = choose(budget)
        served = [round(float(v), 3) for v in measure(chosen)]
        tried.append({"parts_budget_ms": [round(budget.p50_ms, digits), round(budget.p99_ms, digits)],
                      "served_ms": served, "chose": describe(chosen)})
        return chosen, served

    budget = parts
    for _ in range(max(1, rounds)):
        chosen, served = attempt(budget)
        if whole.fits(*served):
            return chosen, served, tried
        budget = budget.backed_off(served, whole)
    chosen, served = attempt(parts.floor(), digits=6)  # MIN_PARTS_MS would round to 0 (unbounded) at 3
    return chosen, served, tried


def blend_cost(weights: np.ndarray, costs: np.ndarray, buckets: np.ndarray) -> tuple[float, float]:
    """(p50, p99) ms of the parts a blend asks per priced query: a query in bucket b pays every
    part with a weight > 0 in row b of `weights` (one row: every bucket's)."""
    rows = np.atleast_2d(np.asarray(weights, dtype=np.float64)) > 0
    if not len(costs):
        return 0.0, 0.0
    paid = rows[np.minimum(np.asarray(buckets, dtype=np.int64), len(rows) - 1)]  # queries x parts
    per_query = (costs * paid).sum(axis=1)
    return float(np.percentile(per_query, 50)), float(np.percentile(per_query, 99))


def price_sample(n_queries: int, size: int = PRICE_QUERIES, seed: int = 0) -> np.ndarray:
    """The indices of the queries candidates are priced on (the same for every candidate)."""
    if n_queries <= size:
        return np.arange(n_queries)
    return np.sort(np.random.default_rng(seed).choice(n_queries, size, replace=False))


#: Bytes of the long-term cache a priced item-kNN keeps (one user's part at a time is enough).
PRICE_CACHE_BYTES = 16 << 20


@runtime_checkable
class KeepsLongTerm(Protocol):
    """A model that keeps each user's long-term part between requests (models/item_knn.py)."""

    long_term_cache: LongTermCache | None


@runtime_checkable
class Wraps(Protocol):
    """A view that serves through another model (models/auto.py's long-term view)."""

    inner: Recommender | None


def as_served(model: Recommender) -> Recommender:
    """`model` set up as the server runs it: an item-kNN (or a view over one) keeps users'
    long-term parts between requests as the live one does (recommend/model_set.py gives it the
    process's LongTermCache), so a returning user's request is priced as served (the recent
    rows' pass and the kept part), not as a gather of every history row each time."""
    inner = model.inner if isinstance(model, Wraps) else model
    if isinstance(inner, KeepsLongTerm) and inner.long_term_cache is None:
        inner.long_term_cache = LongTermCache(PRICE_CACHE_BYTES)
    return model


def price(model: Recommender, queries: Sequence[Query], n_items: int, repeats: int = REPEATS) -> np.ndarray:
    """CPU milliseconds (this thread's) per query of one request's work for `model`: scores,
    their normalisation and the explanation of its top SLATE items (the minimum of `repeats`
    calls; one untimed call first, so that lazy set-up is not charged to the first query). A
    model that keeps long-term parts (:func:`as_served`) is priced at a returning user's
    request: its first call builds the part, the next reads it."""
    out = np.zeros(len(queries))
    if len(queries):
        _request(model, queries[0], n_items)
    for i, query in enumerate(queries):
        best = np.inf
        for _ in range(max(1, repeats)):
            start = time.thread_time()
            _request(model, query, n_items)
            best = min(best, time.thread_time() - start)
        out[i] = best * 1e3
    return out


def _request(model: Recommender, query: Query, n_items: int) -> None:
    result = scored(model, query, n_items)
    if result.scores is None:
        return
    part = normalised(result.scores)
    top = np.argpartition(-part, min(SLATE, len(part) - 1))[:SLATE] if len(part) > SLATE else np.arange(len(part))
    result.explain(top)


def summary(costs: np.ndarray, names: Sequence[str]) -> dict[str, list[float]]:
    """Each part's priced (p50, p99) ms, rounded: what GET /models shows."""
    if not len(costs):
        return {name: [0.0, 0.0] for name in names}
    return {name: [round(float(np.percentile(costs[:, k], 50)), 3), round(float(np.percentile(costs[:, k], 99)), 3)]
            for k, name in enumerate(names)}
