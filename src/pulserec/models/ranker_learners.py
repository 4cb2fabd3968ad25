"""The learned scoring function of the ranker: LightGBM (lambdarank) or a logistic fallback.

Both learners expose the same small surface: ``fit(X, labels, groups)``, ``predict(X)`` and
``importance`` (per-feature gain, or summed |coefficient| for the logistic model). :class:`RankingModel` bundles a learner with the
:class:`FeatureBuilder` it was trained with; that bundle is what is saved and loaded."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np
from scipy.optimize import minimize

from pulserec.models.persist import SavedState
from pulserec.models.ranker_features import FeatureBuilder, Vocabulary


def lightgbm_available() -> bool:
    return importlib.util.find_spec("lightgbm") is not None


class Learner(Protocol):
    kind: str

    def fit(self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> Learner: ...

    def saved_values(self) -> dict[str, Any]: ...

    def predict(self, features: np.ndarray) -> np.ndarray: ...

    @property
    def importance(self) -> np.ndarray: ...


DEFAULT_LGBM_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 100,  # large leaves: item-level features must not memorise single items
    "min_data_per_group": 20,
    "cat_smooth": 5.0,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 20,
    "num_threads": 1,  # several threads thrash on a shared 2-core box; trees here are small
    "force_col_wise": True,
    "verbose": -1,
    "seed": 0,
    "deterministic": True,
}


class LightGBMLearner:
    """Gradient-boosted trees with a lambdarank objective grouped by query (or binary)."""

    kind = "lightgbm"

    def __init__(self, categorical: list[int], rounds: int = 200, params: dict[str, Any] | None = None) -> None:
        self.categorical = list(categorical)
        self.rounds = rounds
        self.params = {**DEFAULT_LGBM_PARAMS, **(params or {})}
        self.booster: Any = None

    def fit(self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> LightGBMLearner:
        import lightgbm as lgb

        ranking = self.params["objective"] in ("lambdarank", "rank_xendcg")
        target = labels.astype(np.int32) if ranking else (labels > 0).astype(np.int32)
        dataset = lgb.Dataset(features, target, group=groups if ranking else None, categorical_feature=self.categorical,
                              free_raw_data=True)
        self.booster = lgb.train(self.params, dataset, num_boost_round=self.rounds)
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.booster.predict(features, num_threads=1)

    @property
    def importance(self) -> np.ndarray:
        return self.booster.feature_importance(importance_type="gain")

    def saved_values(self) -> dict[str, Any]:
        """LightGBM's own text model (parsed by LightGBM, never executed) and the training settings."""
        text = self.booster.model_to_string() if self.booster is not None else ""
        return {"categorical": self.categorical, "rounds": self.rounds, "params": self.params,
                "booster": np.frombuffer(text.encode(), dtype=np.uint8)}

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> LightGBMLearner:
        learner = cls(list(values["categorical"]), int(values["rounds"]), dict(values["params"]))
        text = values["booster"].tobytes().decode()
        if text:
            import lightgbm as lgb

            learner.booster = lgb.Booster(model_str=text)
        return learner


@dataclass
class LogisticLearner:
    """L2-regularised logistic regression on standardised numeric and one-hot categorical columns."""

    categorical: list[int]
    l2: float = 1.0
    kind: str = "logistic"
    levels: dict[int, np.ndarray] = field(default_factory=dict)
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    coef: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bias: float = 0.0
    owner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # design column -> feature

    def _design(self, features: np.ndarray) -> np.ndarray:
        numeric = [c for c in range(features.shape[1]) if c not in self.levels]
        blocks = [(features[:, numeric] - self.mean) / self.scale]
        for column, levels in self.levels.items():
            blocks.append((features[:, [column]] == levels[None, :]).astype(np.float64))
        return np.hstack(blocks)

    def fit(self, features: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> LogisticLearner:
        self.levels = {c: np.unique(features[:, c]) for c in self.categorical}
        numeric = [c for c in range(features.shape[1]) if c not in self.levels]
        self.mean = features[:, numeric].mean(axis=0)
        self.scale = np.where(features[:, numeric].std(axis=0) > 0, features[:, numeric].std(axis=0), 1.0)
        self.owner = np.array(numeric + [c for c, lv in self.levels.items() for _ in lv], dtype=np.int64)
        design = self._design(features)
        target = (labels > 0).astype(np.float64)
        n = len(target)

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            margin = design @ params[:-1] + params[-1]
            prob = 1.0 / (1.0 + np.exp(-margin))
            value = np.logaddexp(0.0, margin).sum() - target @ margin + 0.5 * self.l2 * params[:-1] @ params[:-1]
            residual = prob - target
            grad = np.append(design.T @ residual + self.l2 * params[:-1], residual.sum())
            return value / n, grad / n

        result = minimize(loss, np.zeros(design.shape[1] + 1), jac=True, method="L-BFGS-B")
        self.coef, self.bias = result.x[:-1], float(result.x[-1])
        return self

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self._design(features) @ self.coef + self.bias

    def saved_values(self) -> dict[str, Any]:
        return {"categorical": self.categorical, "l2": self.l2, "levels": {str(c): v for c, v in self.levels.items()},
                "mean": self.mean, "scale": self.scale, "coef": self.coef, "bias": self.bias, "owner": self.owner}

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> LogisticLearner:
        levels = {int(c): v for c, v in values["levels"].items()}
        return cls(list(values["categorical"]), float(values["l2"]), levels=levels, mean=values["mean"],
                   scale=values["scale"], coef=values["coef"], bias=float(values["bias"]), owner=values["owner"])

    @property
    def importance(self) -> np.ndarray:
        out = np.zeros(len(self.mean) + len(self.levels))
        np.add.at(out, self.owner, np.abs(self.coef))
        return out


def make_learner(backend: str, categorical: list[int], rounds: int = 200, objective: str = "lambdarank") -> Learner:
    """`backend`: "lightgbm", "logistic", or "auto" (LightGBM when installed). `objective`
    ("lambdarank" or "binary") and `rounds` apply to LightGBM; the logistic model is binary."""
    if backend == "auto":
        backend = "lightgbm" if lightgbm_available() else "logistic"
    if backend == "lightgbm":
        return LightGBMLearner(categorical, rounds, {"objective": objective})
    if backend == "logistic":
        return LogisticLearner(categorical)
    raise ValueError(f"unknown ranker backend {backend!r}; use lightgbm, logistic or auto")


LEARNERS: dict[str, Any] = {"lightgbm": LightGBMLearner, "logistic": LogisticLearner}


@dataclass
class RankingModel(SavedState):
    """A fitted learner with the feature builder it was trained with (what is saved and loaded,
    as the model "ranker": see :mod:`pulserec.models.persist`)."""

    name: ClassVar[str] = "ranker"

    features: FeatureBuilder
    learner: Learner
    stats: dict[str, Any] = field(default_factory=dict)

    def saved_params(self) -> dict[str, Any]:
        return {}

    def saved_values(self) -> dict[str, Any]:
        features = self.features
        return {"sources": list(features.sources), "depth": features.depth, "categories": features.categories.codes,
                "devices": features.devices.codes, "locations": features.locations.codes, "stats": self.stats,
                # the attributes' order is their columns' (a dict's keys would be sorted in the file)
                "attributes": list(features.attributes), "attribute_codes": {a: v.codes for a, v in features.attributes.items()},
                "learner_kind": self.learner.kind, "learner": self.learner.saved_values()}

    @classmethod
    def from_saved(cls, params: dict[str, Any], values: dict[str, Any]) -> RankingModel:
        codes = values.get("attribute_codes", {})  # absent from models saved before attribute features
        attributes = {str(a): Vocabulary(dict(codes[a])) for a in values.get("attributes", [])}
        features = FeatureBuilder(tuple(values["sources"]), int(values["depth"]), Vocabulary(dict(values["categories"])),
                                  Vocabulary(dict(values["devices"])), Vocabulary(dict(values["locations"])), attributes)
        kind = values["learner_kind"]
        if kind not in LEARNERS:
            raise ValueError(f"unknown ranking learner {kind!r}")
        return cls(features, LEARNERS[kind].from_saved(values["learner"]), dict(values["stats"]))

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return self.learner.predict(matrix)

    @property
    def feature_importance(self) -> dict[str, float]:
        """Gain per feature (LightGBM), or summed |coefficient| (logistic), largest first."""
        pairs = zip(self.features.names, np.asarray(self.learner.importance, dtype=np.float64).tolist())
        return dict(sorted(((name, round(value, 6)) for name, value in pairs), key=lambda kv: -kv[1]))
