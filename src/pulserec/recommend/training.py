"""Train batch models on the stored log, save them, and swap them into serving atomically.

Training runs outside the engine lock on a snapshot of the log (up to a `seq` watermark), so
serving goes on; the trained model is then installed with one assignment under the lock (the
`install` callable handed in: `engine/training.py:Training.install_model`).
Events that arrived while it trained are not lost: the online state already holds them, and
factor models fold new events in from the user's live history at request time."""

from __future__ import annotations

import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

import pandas as pd

from pulserec.config import Settings
from pulserec.events import owner_keys
from pulserec.models.auto import AutoBlend
from pulserec.models.hybrid import Hybrid
from pulserec.models.interactions import Interactions
from pulserec.models.persist import save_model
from pulserec.models.registry import TORCH_MODELS, TRAINABLE, build_model
from pulserec.online.catalog import Catalog
from pulserec.recommend.background import PeriodicTask
from pulserec.recommend.jobs import Report
from pulserec.recommend.request_cost import overhead_meter, served_meter
from pulserec.recommend.saved_models import Install, file_meta, model_path
from pulserec.store import SQLiteStore

if TYPE_CHECKING:
    from pulserec.models.ranker_training import TrainingOptions

log = logging.getLogger(__name__)

#: Batch models the demo and `pulserec serve --retrain-*` build when their module is present.
DEFAULT_BATCH_MODELS = ("als", "content")


def snapshot(store: SQLiteStore, weights: Mapping[str, float]) -> tuple[Interactions, int]:
    """The whole stored log as interactions, and the `seq` watermark it goes up to."""
    watermark = store.max_seq()
    frames = list(store.iter_events(upto_seq=watermark))
    frame = pd.concat(frames, ignore_index=True) if frames else None
    if frame is None or frame.empty:
        return Interactions.from_frame(pd.DataFrame(columns=["user_id", "item_id", "type", "ts"]), weights), watermark
    frame = frame.assign(user_id=owner_keys(frame)).sort_values("ts", kind="stable")
    return Interactions.from_frame(frame, weights), watermark


def apply_torch_threads(threads: int, model: Any = None) -> None:
    """Pin torch's intra-op threads once torch is loaded (a sequence model was built or loaded),
    or before `model` is fitted when it will train with torch (a sequence model, or a blend with
    one among its parts, which imports torch only inside its fit); otherwise torch is never
    imported, so installs without the `seq` extra pay nothing."""
    torch = sys.modules.get("torch")
    if torch is None and model is not None and uses_torch(model) and importlib.util.find_spec("torch") is not None:
        import torch  # noqa: PLC0415 - only for a model that is about to train with it
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def uses_torch(model: Any) -> bool:
    """Whether fitting `model` trains a torch model (itself, or a part of a blend)."""
    from pulserec.models.hybrid import Hybrid  # noqa: PLC0415 - light; only asked before a fit

    names = [model.name, *(model.component_names() if isinstance(model, Hybrid) else [])]
    return any(name in TORCH_MODELS for name in names)


def training_info(data: Interactions, watermark: int | None, seconds: float, params: dict[str, Any]) -> dict[str, Any]:
    """The metadata saved with a trained model: when, on what, how long, and with which parameters
    (a background retrain reads them back)."""
    return {"trained_at": time.time(), "train_seconds": round(seconds, 3), "watermark_seq": watermark,
            "events": len(data), "users": data.n_users, "items": data.n_items, "params": params}


def built_for_training(name: str, params: Mapping[str, Any], settings: Settings) -> Any:
    """Model `name` built with `params` as training fits it: torch threads set, and a blend with
    a latency budget told what a served request costs besides its parts (recommend/request_cost.py:
    the budget is then the whole request's, issue 2's target); `auto`, which serves as the
    default, is also verified as the default serves it (request_cost.served_cost)."""
    model = build_model(name, **params)
    apply_torch_threads(settings.torch_threads, model)
    if isinstance(model, Hybrid) and model.budget is not None:
        model.request_overhead = overhead_meter(settings)
        if isinstance(model, AutoBlend):
            model.request_meter = served_meter(settings)
    return model


def fit_model(name: str, params: Mapping[str, Any], data: Interactions, catalog: Catalog | None, settings: Settings,
              watermark: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Build model `name` with `params`, fit it, and return it with its :func:`training_info`."""
    model = built_for_training(name, params, settings)
    started = time.perf_counter()
    model.fit(data, catalog)
    seconds = time.perf_counter() - started
    return model, training_info(data, watermark, seconds, model.saved_params())


def train_and_install(store: SQLiteStore, settings: Settings, catalog: Catalog, install: Install,
                      names: Iterable[str] = DEFAULT_BATCH_MODELS, save: bool = True,
                      progress: Report | None = None,
                      params_of: Callable[[str], Mapping[str, Any] | None] | None = None) -> list[str]:
    """Fit each named model on a snapshot of `store`'s log, save it under the data dir's models
    folder (if `save`) and `install` it. `catalog` is the live one (content models read it).
    Each model is built with `params_of(name)` (the parameters it was last trained with; the
    defaults when None). Returns log lines.

    `progress` (a job's report) hears of each step: reading the log, then fitting each model; a fit
    itself reports nothing, so a job's progress moves per model, not within one."""
    names = [n for n in names if n in TRAINABLE]
    if not names:
        return []
    report = progress or (lambda fraction, note: None)
    report(0.0, "reading the log")
    data, watermark = snapshot(store, settings.weighting)
    if len(data) == 0:
        return [f"{n}: no events to train on yet" for n in names]
    lines = []
    for done, name in enumerate(names):
        report(0.1 + 0.9 * done / len(names), f"fitting {name} on {len(data):,} interactions")
        model, meta = fit_model(name, (params_of(name) if params_of else None) or {}, data, catalog, settings, watermark)
        if save:
            target = model_path(settings.data_dir, name)
            save_model(model, target, meta)
            meta = {**meta, **file_meta(target)}  # with the file's stamp: watchers in this process skip it
        install(model, meta)
        lines.append(f"{name}: trained on {len(data):,} interactions in {meta['train_seconds']:.2f}s")
    return lines


def ranker_options(params: Mapping[str, Any]) -> tuple[list[str] | None, TrainingOptions]:
    """(source names, training options) from the ranker's parameters; ValueError names a bad one."""
    from pulserec.models.ranker_training import TrainingOptions  # noqa: PLC0415 - only ranker training needs it

    params = dict(params)
    sources = params.pop("sources", None)
    if isinstance(sources, str):
        sources = [s.strip() for s in sources.split(",") if s.strip()]
    known = {f.name for f in fields(TrainingOptions)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown ranker parameters {', '.join(unknown)}; known: sources, {', '.join(sorted(known))}")
    if params.get("positive_types") is not None:
        params["positive_types"] = tuple(params["positive_types"])
    return sources, TrainingOptions(**params)


def ranker_info(sources: list[str], options: TrainingOptions, seconds: float, watermark: int | None) -> dict[str, Any]:
    """The metadata saved with a trained ranker: its sources (served strategies, resolved by name
    when it is loaded) and its parameters (sources and training options, for a retrain)."""
    return {"trained_at": time.time(), "train_seconds": round(seconds, 3), "watermark_seq": watermark,
            "sources": sources, "params": {"sources": sources, **asdict(options)}}


class RetrainScheduler(PeriodicTask):
    """Retrains batch models in a background thread every `interval` seconds and/or every
    `every_events` newly applied events; serving continues and each model swaps in atomically.

    `train(names)` trains and installs (`Training.train` of the engine); `applied()` counts the events applied
    so far (the online state's `applied`)."""

    thread_name = "pulserec-retrain"

    def __init__(self, train: Callable[[Sequence[str]], list[str]], applied: Callable[[], int],
                 names: Iterable[str] = DEFAULT_BATCH_MODELS, interval: float = 0.0, every_events: int = 0,
                 poll: float = 1.0) -> None:
        if interval <= 0 and every_events <= 0:
            raise ValueError("give a retrain interval or an event count")
        super().__init__(poll)
        self.train = train
        self.applied = applied
        self.names = tuple(names)
        self.interval = interval
        self.every_events = every_events
        self.runs = 0
        self._last_time, self._last_count = time.monotonic(), applied()

    def _due(self) -> bool:
        if self.interval > 0 and time.monotonic() - self._last_time >= self.interval:
            return True
        return self.every_events > 0 and self.applied() - self._last_count >= self.every_events

    def tick(self) -> None:
        if not self._due():
            return
        self._last_time, self._last_count = time.monotonic(), self.applied()
        for line in self.train(self.names):
            log.info("retrain: %s", line)
        self.runs += 1
