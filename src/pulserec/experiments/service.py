"""Experiments at serving time: resolve a request to a variant, remember what was served, report."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pulserec.experiments.assignment import Assignment, ExperimentConfig, assign
from pulserec.experiments.stats import two_proportion_z
from pulserec.store.feedback import FeedbackStore

#: The start of the KeyError for a request naming an experiment that does not exist (a 422).
UNKNOWN_EXPERIMENT = "unknown experiment"


@dataclass(frozen=True)
class Served:
    user_id: str | None
    session_id: str | None
    strategy: str
    experiment: str | None
    variant: str | None
    items: tuple[str, ...]
    #: (item_id, kind, name) of the items a promotion (or exploration) placed: counted per slot.
    slots: tuple[tuple[str, str, str], ...] = ()


class Experiments:
    """Experiment configs (persisted), per-request assignment and the outcome report."""

    def __init__(self, feedback: FeedbackStore, remember: int = 100_000) -> None:
        self.feedback = feedback
        self._lock = threading.Lock()
        self._configs = {name: ExperimentConfig.model_validate(cfg) for name, cfg in feedback.experiments().items()}
        self._served: OrderedDict[str, Served] = OrderedDict()
        self._remember = remember

    def put(self, name: str, config: ExperimentConfig) -> None:
        with self._lock:
            if config.default:
                for other, existing in self._configs.items():
                    if other != name and existing.default:
                        raise ValueError(f"experiment {other!r} is already the default one")
            self.feedback.put_experiment(name, config.model_dump(), time.time())
            self._configs[name] = config

    def delete(self, name: str) -> bool:
        with self._lock:
            self._configs.pop(name, None)
            return self.feedback.delete_experiment(name)

    def get(self, name: str) -> ExperimentConfig | None:
        return self._configs.get(name)

    def names(self) -> list[str]:
        return sorted(self._configs)

    def resolve(self, subject: str, experiment: str | None, strategy: str | None) -> Assignment | None:
        """The variant for this user/session: of the named experiment, else of the default one
        (unless the request pins a strategy). Raises KeyError for an unknown experiment."""
        if experiment is None:
            if strategy is not None:
                return None
            experiment = next((n for n, c in self._configs.items() if c.default and c.active), None)
            if experiment is None:
                return None
        config = self._configs.get(experiment)
        if config is None:
            raise KeyError(f"{UNKNOWN_EXPERIMENT} {experiment!r}")
        if not config.active:
            return None
        return assign(experiment, config, subject)

    def remember(self, rec_id: str, served: Served) -> None:
        with self._lock:
            self._served[rec_id] = served
            while len(self._served) > self._remember:
                self._served.popitem(last=False)

    def forget_user(self, user_key: str) -> None:
        """Drop what was served to a deleted user: a later impression naming one of those
        recommendation ids would otherwise store their id again."""
        with self._lock:
            for rec_id in [r for r, served in self._served.items() if served.user_id == user_key]:
                del self._served[rec_id]

    def served(self, rec_id: str) -> Served | None:
        return self._served.get(rec_id)

    def report(self, name: str) -> dict[str, Any]:
        config = self._configs.get(name)
        if config is None:
            raise KeyError(f"{UNKNOWN_EXPERIMENT} {name!r}")
        rows = {r["name"]: r for r in self.feedback.outcomes("variant", name)}
        variants = []
        control = rows.get(config.variants[0].name)
        for variant in config.variants:
            row = rows.get(variant.name) or {"impressions": 0, "clicked": 0, "converted": 0, "users": 0, "ctr": 0.0,
                                             "conversion_rate": 0.0}
            entry = {"name": variant.name, "strategy": variant.strategy, "weight": variant.weight,
                     **{k: v for k, v in row.items() if k != "name"}}
            if control is not None and variant is not config.variants[0]:
                for metric, key in (("ctr", "clicked"), ("conversion", "converted")):
                    test = two_proportion_z(control[key], control["impressions"], row[key], row["impressions"])
                    entry[f"{metric}_vs_control"] = None if test is None else {
                        "z": round(test.z, 4), "p_value": test.p_value, "lift": test.lift, "significant": test.significant()}
            variants.append(entry)
        return {"experiment": name, "active": config.active, "default": config.default, "control": config.variants[0].name,
                "variants": variants}
