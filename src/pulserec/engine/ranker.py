"""Training and installing the learned ranker (LightGBM over the served strategies' scores).

The learners load LightGBM (0.7 s), which only ranker training needs: recommend/ranker_install.py
is imported inside the methods."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from pulserec.models.base import Recommender
from pulserec.models.persist import save_model
from pulserec.recommend.saved_models import RANKER, file_meta, model_path
from pulserec.recommend.training import ranker_info, ranker_options

if TYPE_CHECKING:
    from pulserec.engine.core import Engine
    from pulserec.models.ranker import Ranker
    from pulserec.models.ranker_training import TrainingOptions


class RankerTraining:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def train_saved(self, params: Mapping[str, Any], save: bool = True, target: Path | None = None) -> str:
        """Train the ranker with `params` (``sources``: served strategy names, default item_knn and
        trending; the rest :class:`TrainingOptions`), save it (to `target`, default
        `<data_dir>/models/ranker.model`) with those parameters, and serve it; returns a log line."""
        from pulserec.recommend.ranker_install import sources_named  # noqa: PLC0415 - loads LightGBM

        engine = self.engine
        names, options = ranker_options(params)
        with engine.lock:
            sources = sources_named(engine.service.models, names)
        watermark, started = engine.store.max_seq(), time.perf_counter()
        target = (target or model_path(engine.settings.data_dir, RANKER)) if save else None

        def keep(model: Any) -> dict[str, Any]:  # saved before it is served: GET /models never shows it half-described
            info = ranker_info(list(sources), options, time.perf_counter() - started, watermark)
            if target is None:
                return info
            save_model(model, target, info)
            return {**info, **file_meta(target)}  # with the file's stamp: watchers in this process skip it

        ranker = self.train(sources, options, keep=keep)
        engine.counters[f"models.{RANKER}.trained"] += 1
        return f"{RANKER}: trained over {', '.join(ranker.sources)} in {ranker.info['train_seconds']:.2f}s" + (
            f" -> {target}" if target else "")

    def train(self, sources: Mapping[str, Recommender] | None = None, options: TrainingOptions | None = None,
              impressions: pd.DataFrame | None = None, labels: pd.DataFrame | None = None,
              keep: Callable[[Any], Mapping[str, Any]] | None = None) -> Ranker:
        """Train the ranker on the stored log (serving goes on meanwhile) and serve it. `keep`
        (given the trained ranking model: save it) returns the metadata the served ranker shows."""
        from pulserec.recommend.ranker_install import default_sources, install_ranker, train_ranker  # noqa: PLC0415

        engine = self.engine
        with engine.lock:
            models = engine.service.models
            chosen = dict(sources) if sources is not None else default_sources(models)
            items = engine.store.load_items()
        frames = list(engine.store.iter_events())
        events = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        model = train_ranker(events, items, engine.settings, models, chosen, options, impressions, labels,
                             user_attrs=engine.store.user_attrs())
        info = keep(model) if keep is not None else None
        with engine.lock:
            return install_ranker(engine.service.models, model, chosen, trained_over=models, info=info)

    def install_loaded(self, model: Any, meta: dict[str, Any]) -> Recommender | None:
        """A ranking model loaded from a file, served over the sources it was trained with (None
        when one of them is not served)."""
        from pulserec.recommend.ranker_install import install_ranker  # noqa: PLC0415 - loads LightGBM

        names = list(meta.get("sources") or model.features.sources)
        with self.engine.lock:
            strategies = self.engine.service.strategies
            if any(name not in strategies for name in names):
                return None
            return install_ranker(self.engine.service.models, model, {name: strategies[name] for name in names}, info=meta)
