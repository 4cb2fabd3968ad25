"""Hybrid: a :class:`~pulserec.models.blend.Blend` of several models whose weights are LEARNED.

fit() carves a validation split out of the training data (never the test data), fits every
component on the validation-train part, caches their normalised scores for the validation
users, and searches the blend weights maximising NDCG@10 on the held-out validation events,
starting from the best single component (so the blend never loses to its best input on
validation: models/blend_search.py). The components are then refitted on all the training
data and blended with the learned weights."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from pulserec.evaluation.evaluate import Histories, held_out_users, relevant_of, score_queries
from pulserec.evaluation.split import Split, targets_split, validation_split
from pulserec.models.base import Query, Reason, Recommender, declares
from pulserec.models.blend import Blend, GatedBlend, normalised
from pulserec.models.blend_search import TargetSearch, history_bucket
from pulserec.models.interactions import Interactions
from pulserec.models.latency_budget import (Budget, PricedUntrained, as_served, blend_cost, price, price_sample, summary,
                                            verified_choice)
from pulserec.models.persist import SavedState
from pulserec.online.catalog import Catalog

ComponentSpec = str | tuple[str, dict[str, Any]]

DEFAULT_COMPONENTS: tuple[ComponentSpec, ...] = ("als", "item_knn_bm25", "user_knn", "content", "popular")
#: The values a blend weight may take. Steps of x4: with seven values (0.1 ... 4 in steps of
#: x2-2.5) the search found near-equivalent blends among which the validation's noise chose, and
#: those generalised worse (issue 18, seventh session: worst of nine data set x split cases of
#: `auto` 0.91 -> 0.84 of the best peer, but 1.05 -> 1.15 on leave-last-out, better on six of
#: the nine; benchmarks/chooser_lab.py); it is also half the trials.
DEFAULT_GRID: tuple[float, ...] = (0.0, 0.25, 1.0, 4.0)
#: Validation that weighs three targets held out of one training log equally: each user's next
#: item, a random tenth of their other events (long-term taste) and the latest fifth of the log
#: (the present period: evaluation/split.py targets_split). Each is scored apart and the
#: objective is the mean of each target's metric relative to its best single component (1.0 =
#: as good as the best input on all three), each target weighted by the precision of its
#: measurement (models/blend_search.py:target_weights: the one next item a user is noisy). On a plain mixed split the random tenth outnumbers
#: the one next item per user ~16 to 1, so the chosen weights served long-term taste alone; and
#: without the latest period the chosen blend never served what is popular now, which users
#: with a few events want (a time split's test users: docs/benchmarks.md, issue 18).
BALANCED = "balanced"


def _build(spec: ComponentSpec) -> Recommender:
    from pulserec.models.registry import build_model  # late: the registry names this module

    name, params = (spec, {}) if isinstance(spec, str) else spec
    return build_model(name, **params)


def _label(spec: ComponentSpec) -> str:
    return spec if isinstance(spec, str) else spec[0]


def labels(specs: Sequence[ComponentSpec]) -> list[str]:
    """One label per component: its model's name, with its parameters where the name repeats
    (two trending horizons are "trending" and "trending(halflife=31536000.0)")."""
    out: list[str] = []
    for spec in specs:
        label = _label(spec)
        if label in out and not isinstance(spec, str):
            label = f"{label}({', '.join(f'{k}={v}' for k, v in sorted(spec[1].items()))})"
        out.append(label)
    return out


class Hybrid(SavedState):
    name: ClassVar[str] = "hybrid"
    saved_fields: ClassVar[tuple[str, ...]] = (
        "user_ids", "item_ids", "weights", "validation_score", "validation_scores", "models")
    #: Saved when present; a file from before they existed loads without them.
    optional_fields: ClassVar[tuple[str, ...]] = ("validation_targets", "pricing")

    def __init__(
        self,
        components: Sequence[ComponentSpec] = DEFAULT_COMPONENTS,
        validation: str = "mixed",
        validation_params: dict[str, float] | None = None,
        grid: Sequence[float] = DEFAULT_GRID,
        rounds: int = 2,
        metric: str = "ndcg@10",
        history_edges: Sequence[int] = (),
        budget: Sequence[float] | None = None,
        required: Sequence[str] = (),
    ) -> None:
        self.components = list(components)
        self.validation = validation
        self.validation_params = dict(validation_params or {})
        self.grid = tuple(grid)
        self.rounds = rounds
        self.metric = metric
        #: With edges, one weight vector per bucket of the query's history length (distinct
        #: items): bucket 0 up to edges[0] items, ... (models/blend_search.py).
        self.history_edges = tuple(int(e) for e in history_edges)
        #: (p50, p99) ms the parts of the learned blend may cost a request (models/latency_budget.py);
        #: None: not priced, any blend.
        self.budget = None if budget is None else [float(v) for v in budget]
        if self.budget is not None:
            Budget(*self.budget)  # checked now: a bad budget fails before minutes of fitting
        #: Components (by label) that keep a weight > 0 in every bucket whatever the validation
        #: and the budget say (the default's online item-kNN, issue 18.4).
        self.required = [str(name) for name in required]
        unknown = set(self.required) - set(labels(self.components))
        if unknown:
            raise ValueError(f"required components {sorted(unknown)} are not among the components {labels(self.components)}")
        #: One weight per component; with history_edges one such list per bucket.
        self.weights: list[float] | list[list[float]] = [1.0] * len(self.components)
        self.validation_score = float("nan")
        #: Validation score of each component alone and of the learned blend ("blend").
        self.validation_scores: dict[str, float] = {}
        #: Each validation target's score of the blend and of its best single component.
        self.validation_targets: dict[str, dict[str, float]] = {}
        #: With a budget: each part's priced cost, the learned blend's, the budget (ms).
        self.pricing: dict[str, object] = {}
        #: What a served request costs besides the parts, (p50, p99) ms, measured on the
        #: training log at fit by the layer that serves requests (recommend/request_cost.py);
        #: None: the budget bounds the parts alone. Not saved: a function, set before fit.
        self.request_overhead: Callable[[Interactions, Catalog | None], Sequence[float]] | None = None
        #: What the fitted blend's whole served request costs, (p50, p99) ms, measured by the
        #: layer that serves it (recommend/request_cost.py served_cost): with a budget, the
        #: chosen blend is verified as served and the search backs off while it misses
        #: (models/latency_budget.py verified_choice). None: the priced choice stands. Not saved.
        self.request_meter: Callable[[Hybrid, Interactions, Catalog | None], Sequence[float]] | None = None
        #: One fitted model per component; None for a component the learned blend gives no weight.
        self.models: list[Recommender | None] = []
        self.blend = Blend([])

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> Hybrid:
        self.user_ids = data.user_ids
        self.item_ids = data.item_ids
        fitted: dict[int, Recommender] = {}  # a part a verified round served is not fitted again

        def serve(weights: np.ndarray) -> None:
            self.weights = weights.tolist() if self.history_edges else weights[0].tolist()
            used = (self.weight_rows() > 0).any(axis=0)  # a part no bucket weighs is never scored
            for k in np.flatnonzero(used):
                fitted.setdefault(int(k), _build(self.components[k]).fit(data, catalog))
            self.models = [fitted[k] if used[k] else None for k in range(len(self.components))]
            self.after_load()

        self.validation_score = self._learn_weights(data, catalog, serve)
        return self

    def after_load(self) -> None:
        rows = np.atleast_2d(np.asarray(self.weights, dtype=np.float64))
        def blend(row: np.ndarray) -> Blend:
            return Blend([(m, w) for m, w in zip(self.models, row.tolist()) if m is not None], name=self.name)

        if len(rows) == 1:  # one vector (also a file saved before history buckets)
            self.blend = blend(rows[0])
        else:
            self.blend = GatedBlend(self.history_edges, [blend(row) for row in rows], name=self.name)

    def weight_rows(self) -> np.ndarray:
        """The weights as (buckets x components)."""
        return np.atleast_2d(np.asarray(self.weights, dtype=np.float64))

    def component_names(self) -> list[str]:
        return labels(self.components)

    def _targets(self, data: Interactions) -> dict[str, Split]:
        """The validation targets carved from `data`, all on one training log."""
        if self.validation == BALANCED:
            return targets_split(data, **self.validation_params)
        return {"all": validation_split(data, self.validation, **self.validation_params)}

    def _learn_weights(self, data: Interactions, catalog: Catalog | None, serve: Callable[[np.ndarray], None]) -> float:
        """Search the weights on validation carved from `data`, `serve` the chosen ones (fitted
        on all of `data`) and return the chosen blend's validation score."""
        targets = self._targets(data)
        train = next(iter(targets.values())).train
        users = np.unique(np.concatenate([held_out_users(part) for part in targets.values()]))
        if len(users) == 0:
            serve(np.ones((len(self.history_edges) + 1, len(self.components))))
            return float("nan")
        histories = Histories(train)
        queries = [histories.query(int(u)) for u in users]
        sample = price_sample(len(queries)) if self.budget is not None else np.zeros(0, dtype=np.int64)
        buckets = history_bucket(np.array([len(q.history) for q in queries]), self.history_edges)
        overhead = (list(self.request_overhead(train, catalog))
                    if self.budget is not None and self.request_overhead is not None else None)
        parts_budget = Budget(*self.budget).less(overhead) if self.budget is not None else None
        parts, costs, unaffordable = self._validated_parts(train, catalog, queries, sample, buckets, parts_budget)
        search = TargetSearch(parts, train.to_csr()[users], {name: relevant_of(part, users) for name, part in targets.items()},
                              buckets, self.metric)
        required = [labels(self.components).index(name) for name in self.required]

        def choose(budget: Budget | None) -> tuple[np.ndarray, float, list[float]]:
            feasible = budget.admits(costs, buckets[sample], unaffordable, required) if budget else None
            return search.search(self.grid, self.rounds, feasible, required)

        (weights, best, singles), verified = self._verified(choose, parts_budget, serve, data, catalog)
        if self.budget is not None:
            self.pricing = {"budget_ms": list(self.budget), "request_overhead_ms": overhead,
                            "blend_ms": [round(v, 3) for v in blend_cost(weights, costs, buckets[sample])],
                            "parts_ms": summary(costs, labels(self.components)), "queries": int(len(sample)),
                            "not_trained": [labels(self.components)[k] for k in unaffordable], **verified}
        # a part priced out before its training has no validation score (its zeros scored nothing)
        self.validation_scores = {**{name: score for k, (name, score) in enumerate(zip(labels(self.components), singles))
                                     if k not in unaffordable}, "blend": best}
        self.validation_targets = {name: {"blend": score, "best_single": search.best[name],
                                          "users": int((search.n_relevant[name] > 0).sum()),
                                          "weight": search.target_weights[name]}
                                   for name, score in search.target_scores(weights).items()}
        return best

    def _verified(self, choose: Callable[[Budget | None], tuple[np.ndarray, float, list[float]]],
                  parts_budget: Budget | None, serve: Callable[[np.ndarray], None], data: Interactions,
                  catalog: Catalog | None) -> tuple[tuple[np.ndarray, float, list[float]], dict[str, object]]:
        """The search's choice, served; with a budget and a `request_meter`, verified as served
        (latency_budget.verified_choice: re-searched within a smaller parts' budget while the
        whole request misses). Also what pricing records of it: the served ms, each round's."""
        meter = self.request_meter
        if parts_budget is None or meter is None or self.budget is None:
            found = choose(parts_budget)
            serve(found[0])
            return found, {}

        def measure(found: tuple[np.ndarray, float, list[float]]) -> Sequence[float]:
            serve(found[0])
            return meter(self, data, catalog)

        def parts(found: tuple[np.ndarray, float, list[float]]) -> list[str]:  # what each round served
            return [name for name, used in zip(labels(self.components), (found[0] > 0).any(axis=0)) if used]

        found, served, rounds = verified_choice(choose, measure, Budget(*self.budget), parts_budget, describe=parts)
        return found, {"served_ms": served, "verify_rounds": rounds}

    def _validated_parts(self, train: Interactions, catalog: Catalog | None, queries: list[Query], sample: np.ndarray,
                         buckets: np.ndarray, budget: Budget | None) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(each component's normalised validation scores: components x queries x items, its
        priced ms per sampled query: sample x components, the components priced out before
        their training: a part that fits no blend within the budget is not trained, zeros)."""
        parts, costs, unaffordable = [], [], []
        priced = [queries[i] for i in sample]
        for spec in self.components:
            model = _build(spec)
            if budget is not None and declares(model, PricedUntrained):  # priced before its training
                cost = price(model.untrained().fit(train, catalog), priced, train.n_items)
                if not budget.affords(cost, buckets[sample]):
                    parts.append(np.zeros((len(queries), train.n_items), dtype=np.float32))
                    costs.append(cost)
                    unaffordable.append(len(parts) - 1)
                    continue
            model = model.fit(train, catalog)
            parts.append(normalised(score_queries(model, queries, train.n_items)))
            costs.append(price(as_served(model), priced, train.n_items))
            del model  # one candidate's fitted state at a time (two dense EASEs are 0.37 GiB each)
        return np.stack(parts), np.stack(costs, axis=1), unaffordable

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        return self.blend.score(query, n_items)

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        rows = self.weight_rows()
        weights = rows[np.minimum(history_bucket(np.array([len(q.history) for q in queries], dtype=np.int64),
                                                 self.history_edges), len(rows) - 1)]  # (queries x components)
        total = np.zeros((len(queries), n_items), dtype=np.float32)
        any_part = np.zeros(len(queries), dtype=bool)
        for k, model in enumerate(self.models):
            if model is None or not weights[:, k].any():
                continue
            scores = score_queries(model, queries, n_items)
            any_part |= np.isfinite(scores).any(axis=1) & (weights[:, k] > 0)
            total += weights[:, k, None].astype(np.float32) * normalised(scores)
        total[~any_part] = -np.inf
        return total

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        return self.blend.similar(item, n_items)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        return self.blend.explain(query, items)
