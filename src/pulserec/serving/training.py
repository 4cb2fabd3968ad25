"""Train batch models on the stored log and install them as serving strategies."""

from __future__ import annotations

import time
from collections.abc import Iterable

import pandas as pd

from pulserec.engine import Engine
from pulserec.models.interactions import Interactions
from pulserec.models.registry import MODELS, build_model
from pulserec.serving.aligned import AlignedModel

#: Batch models the demo and `pulserec train --all` build when their module is present.
DEFAULT_BATCH_MODELS = ("als", "content", "sasrec")


def interactions_from_store(engine: Engine) -> Interactions:
    frames = list(engine.store.iter_events())
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["user_id", "item_id", "type", "ts"])
    frame = frame.assign(user_id=frame["user_id"].where(frame["user_id"].notna(), "~" + frame["session_id"].astype(str)))
    return Interactions.from_frame(frame, engine.settings.event_weights)


def train_and_install(engine: Engine, names: Iterable[str] = DEFAULT_BATCH_MODELS) -> list[str]:
    lines = []
    names = [n for n in names if n in MODELS]
    if not names:
        return lines
    data = interactions_from_store(engine)
    for name in names:
        started = time.perf_counter()
        model = build_model(name)
        model.fit(data, engine.state.catalog)
        seconds = time.perf_counter() - started
        with engine.lock:
            engine.service.register(AlignedModel(model, engine.state.catalog, engine.state.owners,
                                                 meta={"trained_on": len(data), "train_seconds": round(seconds, 2)}))
        lines.append(f"{name}: trained on {len(data):,} interactions in {seconds:.2f}s")
    return lines
