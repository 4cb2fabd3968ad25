"""The default that chooses itself: a learned blend of online item-kNN with the batch models.

:class:`AutoBlend` is a :class:`~pulserec.models.hybrid.Hybrid` whose candidates are what
pulserec can serve: item-kNN on the recent events (the online model, fresh after every event),
item-kNN on the whole history (:class:`LongTerm`: long-term taste), EASE, time-local EASE, RP3beta, ALS,
trending and all-time popularity (a time split's test period rewards them: on MovieLens' time
validation popularity alone beats every personal model) and, when the `seq` extra is
installed, SASRec. Its weights are learned on a validation split
carved from the training log ("balanced": each user's last event, a random tenth of the rest
and the latest fifth of the log held out, the three scored apart and each weighed by how
precisely the validation measures it, so that neither the next item, the long-term taste nor
the present period alone decides, nor the noise of the one next item a user;
models/hybrid.py), one weight vector for users with up to HISTORY_EDGES items and one for the
others, starting from the best single candidate, so the chosen blend never scores below its
best input on validation (models/blend_search.py).

Served as the `default` strategy (recommend/model_set.py), its item-kNN parts are the live
ones over the online state, so every event is reflected in the next answer; the batch parts
are the trained models. `validation_scores` and `chosen_at` say what was chosen and when."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from pulserec.models.base import Query, Reason, Recommender, Scored, scored
from pulserec.models.hybrid import BALANCED, ComponentSpec, Hybrid, labels
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.query import with_long_term
from pulserec.online.catalog import Catalog

#: Weight of each whole-history item in the long-term view; the blend weight between the two
#: item-kNN views is what is learned (a larger value here changes little once normalised).
LONG_TERM_WEIGHT = 1.0
#: What was popular over about the last year: between the live trending (a week's half-life)
#: and all-time popularity; on MovieLens' time validation a long horizon beats both. Served as
#: trained (recommend/model_set.py: only the live half-life is read from the live counters).
LONG_TRENDING_HALFLIFE = 365 * 86_400.0
#: Where the default's weights change with the user's history (distinct items): up to 10 items
#: the blend learns what new users want (on MovieLens' validation: what is popular now), above
#: it returning users' taste and latest items. On the validation splits carved from the three
#: test splits' training parts (docs/benchmarks.md, issue 18) one edge at 10 items lifted the
#: objective over one shared vector; more buckets split the few short-history users too thinly.
HISTORY_EDGES = (10,)
#: Entries kept per row of the EASE parts' B: on the random split's validation (carved from its
#: training part) 512 cost EASE 1.2% of NDCG@10 (0.2114 vs 0.2139 dense) and time-local EASE
#: 0.5% (0.2217 vs 0.2228); 256 cost 2.5% / 1.7% (docs/benchmarks.md, issue 18 serving).
PRUNED_KEEP = 512
#: The part every history bucket of the default blends, whatever its validation score or price:
#: the online item-kNN over the live co-occurrence, which puts an event (a new item, a new pair)
#: into the user's next answer (issue 18.4). Without it a budget chose time-local EASE alone for
#: long histories, and their new items never surfaced until a retrain.
ONLINE_PART = "item_knn"
#: SASRec's epochs inside the default (each of its two fits): its early stopping otherwise runs
#: up to 50, minutes on a 2-core box.
SEQUENCE_EPOCHS = 10


#: The validation splits `auto` may learn on besides BALANCED (the `auto_validation` setting),
#: with the parameters that make each the kind of split it names on a log like MovieLens': a
#: time split holds out the latest 40% and warms new users up with their first 5 events (else
#: too few users have events on both sides), a random one a quarter of each user's events.
VALIDATIONS: dict[str, dict[str, float]] = {
    "leave-last-out": {},
    "random": {"test_fraction": 0.25},
    "time": {"test_fraction": 0.4, "warm_start": 5},
}


def validation_params(validation: str) -> dict[str, Any]:
    """AutoBlend's parameters for learning on `validation` (BALANCED or a VALIDATIONS name)."""
    if validation == BALANCED:
        return {"validation": BALANCED}
    if validation not in VALIDATIONS:
        raise ValueError(f"unknown validation {validation!r}; choose {BALANCED} or one of {', '.join(VALIDATIONS)}")
    return {"validation": validation, "validation_params": dict(VALIDATIONS[validation])}


def candidates(sequence: bool | None = None) -> list[ComponentSpec]:
    """What the default chooses from; SASRec only where torch is installed (`sequence`=None),
    or as `sequence` says (a small box may leave it out: its training takes minutes)."""
    specs: list[ComponentSpec] = [
        ("item_knn", {}),
        ("long_term", {"model": "item_knn", "weight": LONG_TERM_WEIGHT}),
        # B pruned to each row's PRUNED_KEEP largest entries (models/ease.py `keep`): a request costs
        # history x PRUNED_KEEP, not history x catalogue, which the latency budget prices dense
        # EASE out of on long histories
        ("ease", {"keep": PRUNED_KEEP}),
        # pairs weighted by their time gap (models/ease_local.py): +2.6% over EASE alone on the
        # random split's validation (held half), +4.4% on its test part (docs/benchmarks.md)
        ("ease_local", {"keep": PRUNED_KEEP}),
        ("rp3beta", {}),
        ("als", {}),
        ("trending", {}),
        ("trending", {"halflife": LONG_TRENDING_HALFLIFE}),
        ("popular", {}),
    ]
    if sequence or (sequence is None and importlib.util.find_spec("torch") is not None):
        specs.append(("sasrec", {"max_epochs": SEQUENCE_EPOCHS}))
    return specs


class LongTerm(SavedState):
    """A model asked with the user's whole history added to the query (models/query.py's
    `with_long_term`): long-term taste beside the recent-events view of the same model."""

    name: ClassVar[str] = "long_term"

    def __init__(self, model: str = "item_knn", weight: float = LONG_TERM_WEIGHT, **params: Any) -> None:
        self.model, self.weight, self.params = model, float(weight), params
        self.inner: Recommender | None = None

    def saved_params(self) -> dict[str, Any]:
        return {"model": self.model, "weight": self.weight, **self.params}

    def saved_values(self) -> dict[str, Any]:
        return {"inner": self.inner}

    @classmethod
    def from_saved(cls, params: dict[str, Any], values: dict[str, Any]) -> LongTerm:
        view = cls(**params)
        view.inner = values["inner"]
        return view

    @classmethod
    def over(cls, inner: Recommender, weight: float) -> LongTerm:
        view = cls(inner.name, weight)
        view.inner = inner
        return view

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> LongTerm:
        from pulserec.models.registry import build_model  # late: the registry names this module

        self.inner = build_model(self.model, **self.params).fit(data, catalog)
        return self

    def score(self, query: Query, n_items: int) -> np.ndarray | None:
        return None if self.inner is None else self.inner.score(with_long_term(query, self.weight), n_items)

    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        return None if self.inner is None else self.inner.similar(item, n_items)

    def score_explained(self, query: Query, n_items: int) -> Scored:
        """Scores and their reasons: the history items that contributed most, older ones included."""
        if self.inner is None:
            return Scored(None, lambda items: [None] * len(items))
        return scored(self.inner, with_long_term(query, self.weight), n_items)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        return self.score_explained(query, query.n_items).explain(items)

    def rebound(self, rebind: Callable[[Recommender], Recommender], state: Any) -> LongTerm:
        """The same view over `rebind(inner)` (the live item-kNN of a new online state)."""
        assert self.inner is not None
        return LongTerm.over(rebind(self.inner), self.weight)


class AutoBlend(Hybrid):
    name: ClassVar[str] = "auto"
    saved_fields: ClassVar[tuple[str, ...]] = (*Hybrid.saved_fields, "chosen_at")

    def saved_params(self) -> dict[str, Any]:
        """The hybrid's parameters (the candidates included): enough to rebuild and retrain it."""
        names = ("components", "validation", "validation_params", "grid", "rounds", "metric", "history_edges", "budget",
                 "required")
        return {name: getattr(self, name) for name in names}

    def __init__(self, components: Sequence[ComponentSpec] | None = None, validation: str = BALANCED,
                 sequence: bool | None = None, history_edges: Sequence[int] = HISTORY_EDGES,
                 required: Sequence[str] | None = None, **params: Any) -> None:
        specs = list(components) if components is not None else candidates(sequence)
        if required is None:  # the online item-kNN, wherever it is a candidate (ONLINE_PART)
            required = [ONLINE_PART] if ONLINE_PART in labels(specs) else []
        super().__init__(components=specs, validation=validation, history_edges=history_edges, required=required,
                         **params)
        self.chosen_at = float("nan")

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> AutoBlend:
        super().fit(data, catalog)
        self.chosen_at = time.time()
        return self

    def choice(self) -> dict[str, Any]:
        """What GET /models shows: the weights chosen (one per history bucket: `history_buckets`
        says which users each is for), the validation scores per target, when."""
        rows = self.weight_rows()
        edges = self.history_edges if len(rows) > 1 else ()
        bounds = [0, *edges]
        return {
            "weights": {name: [round(float(w), 4) for w in rows[:, k]] for k, name in enumerate(self.component_names())},
            "history_buckets": [("all users" if not edges else f"over {lo} items") if hi is None else
                                (f"up to {hi} items" if k == 0 else f"{lo + 1}-{hi} items")
                                for k, (lo, hi) in enumerate(zip(bounds, [*edges, None]))],
            "validation": {k: round(float(v), 5) for k, v in self.validation_scores.items()},
            "validation_targets": {t: {k: round(float(v), 5) for k, v in scores.items()}
                                   for t, scores in self.validation_targets.items()},
            "validation_split": self.validation,
            "latency": self.pricing or None,  # each part's priced ms per request, the blend's, the budget
            "required": list(self.required),  # parts every bucket weighs (the online item-kNN)
            "metric": self.metric,
            "chosen_at": self.chosen_at,
        }
