"""Train the ranker on the stored log and serve it as the "ranker" strategy of a model set.

Sources backed by the online state (item-kNN, trending/popular, blends of them, aligned batch
models) are re-bound to the replayed state during training (`ModelSet.rebound_sources`), so
training features are those the engine would have computed at the time; other sources are used
as they are now. A state rebuild carries the ranker over like every served model
(`ModelSet.rebound`). `engine/ranker.py:RankerTraining.train` runs both steps around its lock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from pulserec.config import Settings
from pulserec.models.base import Recommender
from pulserec.models.ranker import Ranker
from pulserec.models.ranker_learners import RankingModel
from pulserec.models.ranker_training import TrainingOptions, train_ranking_model
from pulserec.recommend.model_set import ModelSet
from pulserec.records import ItemRecord


def default_sources(models: ModelSet) -> dict[str, Recommender]:
    """Recall sources when none are named: the live item-kNN and trending models."""
    return {"item_knn": models.item_knn, "trending": models.trending}


def sources_named(models: ModelSet, names: Sequence[str] | None) -> dict[str, Recommender]:
    """The served strategies called `names` (the default sources when None); ValueError names
    the ones not served."""
    if names is None:
        return default_sources(models)
    missing = [name for name in names if name not in models.strategies]
    if missing:
        raise ValueError(f"ranker sources not served: {', '.join(missing)}; available: {', '.join(sorted(models.strategies))}")
    return {name: models.strategies[name] for name in names}


def train_ranker(events: pd.DataFrame, items: Sequence[ItemRecord], settings: Settings, models: ModelSet,
                 sources: Mapping[str, Recommender], options: TrainingOptions | None = None,
                 impressions: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
                 user_attrs: Mapping[str, Mapping[str, Any]] | None = None) -> RankingModel:
    """Learn a ranking model on the log `events`, with `sources` (served by `models`) as recall
    and the declared attributes of its users (`user_attrs`) as features."""
    if events.empty:
        raise ValueError("the engine has no stored events to train the ranker on")
    return train_ranking_model(
        events, items, settings, sources_for=lambda replayed: models.rebound_sources(sources, replayed),
        impressions=impressions, labels=labels, options=options, user_attrs=user_attrs,
    )


def install_ranker(models: ModelSet, model: RankingModel, sources: Mapping[str, Recommender] | None = None,
                   trained_over: ModelSet | None = None, info: Mapping[str, Any] | None = None) -> Ranker:
    """Serve a trained ranking model as strategy "ranker" of `models`, over its state. Sources
    chosen from an earlier model set (`trained_over`: the state was rebuilt meanwhile) are
    re-bound to this one first."""
    chosen = dict(sources) if sources is not None else default_sources(models)
    if trained_over is not None and trained_over is not models:
        chosen = trained_over.rebound_sources(chosen, models.state)
    ranker = Ranker(chosen, models.state, model, info=info, segment=models.segment)
    models.register(ranker)
    return ranker
