"""Train the ranker on a live engine's stored log and install it as the "ranker" strategy.

Sources backed by the online state (item-kNN, trending/popular, blends of them, aligned batch
models) are rebuilt over the replayed state during training, so training features are those
the engine would have computed at the time; other sources are used as they are now.

A state rebuild (`Engine.rebuild_state`) carries the ranker over (`Ranker.rebound_to_service`:
its sources are looked up by name in the new service). :func:`install_ranker` serves a saved
model without retraining."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from pulserec.engine import Engine
from pulserec.models.base import Recommender
from pulserec.models.blend import Blend
from pulserec.models.item_knn import ItemKNN
from pulserec.models.popularity import Trending
from pulserec.models.ranker import Ranker
from pulserec.models.ranker_learners import RankingModel
from pulserec.models.ranker_training import TrainingOptions, train_ranking_model
from pulserec.online.state import OnlineState
from pulserec.recommend.aligned import AlignedModel
from pulserec.recommend.service import RecommendationService


def default_sources(service: RecommendationService) -> dict[str, Recommender]:
    """Recall sources when none are named: the live item-kNN and trending models."""
    return {"item_knn": service.item_knn, "trending": service.trending}


def rebind_source(model: Recommender, old: OnlineState, new: OnlineState) -> Recommender:
    """The same source reading `new` where it reads `old`'s online structures; else unchanged."""
    if isinstance(model, ItemKNN) and model.cooc is old.cooc:
        return ItemKNN(new.cooc)
    if isinstance(model, Trending) and model.popularity is old.popularity:
        clone = type(model)(new.popularity)
        clone.catalog = new.catalog
        return clone
    if isinstance(model, AlignedModel):
        return model.rebound(new.catalog, new.owners)
    if isinstance(model, Blend):
        return Blend([(rebind_source(m, old, new), w) for m, w in model.components], name=model.name)
    return model


def stored_events(engine: Engine) -> pd.DataFrame:
    frames = list(engine.store.iter_events())
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def install_ranker(engine: Engine, model: RankingModel, sources: Mapping[str, Recommender] | None = None) -> Ranker:
    """Serve a trained ranking model as strategy "ranker" over the engine's current state."""
    with engine.lock:
        chosen = dict(sources) if sources is not None else default_sources(engine.service)
        ranker = Ranker(chosen, engine.state, model)
        engine.service.register(ranker)
    return ranker


def train_ranker(
    engine: Engine,
    sources: Mapping[str, Recommender] | None = None,
    options: TrainingOptions | None = None,
    impressions: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
) -> Ranker:
    """Train on the engine's stored log (serving goes on meanwhile) and install the ranker."""
    with engine.lock:
        live = engine.state
        chosen = dict(sources) if sources is not None else default_sources(engine.service)
        items = list(engine.store.load_items())
    events = stored_events(engine)
    if events.empty:
        raise ValueError("the engine has no stored events to train the ranker on")
    model = train_ranking_model(
        events, items, engine.settings,
        sources_for=lambda replayed: {name: rebind_source(m, live, replayed) for name, m in chosen.items()},
        impressions=impressions, labels=labels, options=options,
    )
    with engine.lock:
        if engine.state is not live:  # the state was rebuilt while we trained
            chosen = {name: rebind_source(m, live, engine.state) for name, m in chosen.items()}
        return install_ranker(engine, model, chosen)
