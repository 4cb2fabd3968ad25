"""Train batch models on the stored log, save them, and swap them into serving atomically.

Training runs outside the engine lock on a snapshot of the log (up to a `seq` watermark), so
serving goes on; the trained model is then installed with one assignment under the lock.
Events that arrived while it trained are not lost: the online state already holds them, and
factor models fold new events in from the user's live history at request time."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pandas as pd

from pulserec.events import owner_keys
from pulserec.models.interactions import Interactions
from pulserec.models.registry import MODELS, build_model
from pulserec.recommend.aligned import AlignedModel
from pulserec.recommend.background import PeriodicTask
from pulserec.recommend.saved_models import file_meta, models_dir

if TYPE_CHECKING:
    from pulserec.engine import Engine

log = logging.getLogger(__name__)

#: Batch models the demo and `pulserec serve --retrain-*` build when their module is present.
DEFAULT_BATCH_MODELS = ("als", "content")


def snapshot(engine: Engine) -> tuple[Interactions, int]:
    """The whole stored log as interactions, and the `seq` watermark it goes up to."""
    watermark = engine.store.max_seq()
    frames = list(engine.store.iter_events(upto_seq=watermark))
    frame = pd.concat(frames, ignore_index=True) if frames else None
    if frame is None or frame.empty:
        return Interactions.from_frame(pd.DataFrame(columns=["user_id", "item_id", "type", "ts"]), engine.settings.event_weights), watermark
    frame = frame.assign(user_id=owner_keys(frame)).sort_values("ts", kind="stable")
    return Interactions.from_frame(frame, engine.settings.event_weights), watermark


def install(engine: Engine, model: Any, meta: dict[str, Any]) -> None:
    with engine.lock:
        previous = engine.service.strategies.get(model.name)
        version = (getattr(previous, "meta", {}) or {}).get("version", 0) + 1
        engine.service.register(AlignedModel(model, engine.state.catalog, engine.state.owners, {**meta, "version": version}))


def train_and_install(engine: Engine, names: Iterable[str] = DEFAULT_BATCH_MODELS, save: bool = True) -> list[str]:
    """Fit each named model on a snapshot of the log, save it and install it. Returns log lines."""
    names = [n for n in names if n in MODELS]
    if not names:
        return []
    data, watermark = snapshot(engine)
    if len(data) == 0:
        return [f"{n}: no events to train on yet" for n in names]
    with engine.lock:
        catalog = engine.state.catalog
    lines = []
    for name in names:
        started = time.perf_counter()
        model = build_model(name).fit(data, catalog)
        seconds = time.perf_counter() - started
        meta = {"trained_at": time.time(), "train_seconds": round(seconds, 3), "watermark_seq": watermark,
                "events": len(data), "users": data.n_users, "items": data.n_items}
        if save:
            target = models_dir(engine) / f"{name}.pkl"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.with_suffix(".meta").write_text(repr(meta))  # before the model: a watcher reads both
            model.save(target)
            meta = {**meta, **file_meta(target)}  # with the file's stamp: watchers in this process skip it
        install(engine, model, meta)
        engine.counters[f"models.{name}.trained"] += 1
        lines.append(f"{name}: trained on {len(data):,} interactions in {seconds:.2f}s")
    return lines


class RetrainScheduler(PeriodicTask):
    """Retrains batch models in a background thread every `interval` seconds and/or every
    `every_events` newly stored events; serving continues and each model swaps in atomically."""

    thread_name = "pulserec-retrain"

    def __init__(self, engine: Engine, names: Iterable[str] = DEFAULT_BATCH_MODELS, interval: float = 0.0,
                 every_events: int = 0, poll: float = 1.0) -> None:
        if interval <= 0 and every_events <= 0:
            raise ValueError("give a retrain interval or an event count")
        super().__init__(poll)
        self.engine = engine
        self.names = tuple(names)
        self.interval = interval
        self.every_events = every_events
        self.runs = 0
        self._last_time, self._last_count = time.monotonic(), engine.state.applied

    def _due(self) -> bool:
        if self.interval > 0 and time.monotonic() - self._last_time >= self.interval:
            return True
        return self.every_events > 0 and self.engine.state.applied - self._last_count >= self.every_events

    def tick(self) -> None:
        if not self._due():
            return
        self._last_time, self._last_count = time.monotonic(), self.engine.state.applied
        for line in train_and_install(self.engine, self.names):
            log.info("retrain: %s", line)
        self.runs += 1
