"""Prequential (replay) evaluation: does learning online pay, and how fast?

The time-ordered log is streamed through the engine's online state. Before each event is
applied, the user's top-K is requested and scored against the event's item (a hit if it is
there; NDCG by its rank). Three modes answer the question side by side:

- ``static``: models and state are built from the first part of the log and then frozen;
- ``retrained``: the fair baseline for "does online learning pay": the same model and state
  rebuilt from the whole log so far every ``retrain_every`` events, frozen in between (a
  nightly/periodic batch retrain, without online updates);
- ``online``: every later event updates the online state (co-occurrence, histories, counters);
- ``online+retrain``: online, plus batch models retrained every ``retrain_every`` events and
  blended in (they serve new users through fold-in from their live history).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pulserec.config import Settings
from pulserec.events import Event
from pulserec.models.blend import Blend
from pulserec.models.interactions import Interactions
from pulserec.models.registry import MODELS, build_model
from pulserec.records import ItemRecord
from pulserec.online.state import OnlineState
from pulserec.recommend.aligned import AlignedModel
from pulserec.recommend.service import DEFAULT_STRATEGY, Filters, RecommendationService

MODES = ("static", "retrained", "online", "online+retrain")


@dataclass
class ReplayResult:
    mode: str
    k: int
    hits: np.ndarray  # 1/0 per evaluated event
    ndcg: np.ndarray  # per evaluated event
    positions: np.ndarray  # index of each evaluated event in the replayed stream
    seconds: float
    retrains: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def hit_rate(self) -> float:
        return float(self.hits.mean()) if len(self.hits) else 0.0

    @property
    def mean_ndcg(self) -> float:
        return float(self.ndcg.mean()) if len(self.ndcg) else 0.0

    def timeline(self, bins: int = 10) -> pd.DataFrame:
        """Hit rate and NDCG by slice of the replayed stream (learning curve)."""
        frame = pd.DataFrame({"pos": self.positions, "hit": self.hits, "ndcg": self.ndcg})
        if frame.empty:
            return pd.DataFrame(columns=["slice", "events", f"hit@{self.k}", f"ndcg@{self.k}"])
        frame["slice"] = pd.cut(frame["pos"], bins=bins, labels=False)
        out = frame.groupby("slice").agg(events=("hit", "size"), hit=("hit", "mean"), ndcg=("ndcg", "mean")).reset_index()
        return out.rename(columns={"hit": f"hit@{self.k}", "ndcg": f"ndcg@{self.k}"})


def _events(frame: pd.DataFrame) -> list[Event]:
    return [
        Event(str(r.event_id), r.user_id if isinstance(r.user_id, str) else None, r.item_id if isinstance(r.item_id, str) else None,
              r.type, float(r.ts), session_id=r.session_id if isinstance(r.session_id, str) else None)
        for r in frame.itertuples(index=False)
    ]


def _with_seq(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    return frame.assign(seq=np.arange(1, len(frame) + 1))


class _Replayer:
    def __init__(self, settings: Settings, items: Sequence[ItemRecord], warm: pd.DataFrame, batch_models: Sequence[str],
                 batch_weight: float) -> None:
        self.settings = settings
        self.state = OnlineState(settings)
        for record in items:
            self.state.catalog.upsert(record)
        self.state.apply_frame(warm)
        self.service = RecommendationService(self.state, settings)
        self.batch_models = [m for m in batch_models if m in MODELS]
        self.batch_weight = batch_weight
        self.log: list[pd.DataFrame] = [warm]

    def rebuilt(self, fresh: pd.DataFrame) -> _Replayer:
        """A replayer whose state is built from scratch from the log so far plus `fresh`."""
        log = pd.concat([*self.log, fresh], ignore_index=True)
        return _Replayer(self.settings, list(self.state.catalog.records()), log, self.batch_models, self.batch_weight)

    def retrain(self) -> None:
        if not self.batch_models:
            return
        frame = pd.concat(self.log, ignore_index=True)
        data = Interactions.from_frame(frame, self.settings.weighting)
        components = [(self.service.item_knn, 1.0), (self.service.trending, self.settings.trending_blend)]
        for name in self.batch_models:
            model = build_model(name).fit(data, self.state.catalog)
            components.append((AlignedModel(model, self.state.catalog, self.state.owners), self.batch_weight))
        self.service.register(Blend(components, name=DEFAULT_STRATEGY))


def _evaluated_positions(events: pd.DataFrame, cut: int, max_evaluations: int, seed: int) -> set[int]:
    """Positions in the stream (after `cut`) of the events scored: a sample of the first-time
    (owner, item) events, judged on the true timeline, so that every mode is evaluated on
    exactly the same events."""
    owners = events["user_id"].where(events["user_id"].notna(), "~" + events["session_id"].astype(str))
    first_time = ~pd.DataFrame({"o": owners, "i": events["item_id"]}).duplicated().to_numpy()
    first_time &= events["item_id"].notna().to_numpy()
    candidates = np.flatnonzero(first_time[cut:])
    if not len(candidates):
        return set()
    rng = np.random.default_rng(seed)
    return set(rng.choice(candidates, min(max_evaluations, len(candidates)), replace=False).tolist())


def replay(
    events: pd.DataFrame,
    items: Sequence[ItemRecord],
    mode: str,
    settings: Settings | None = None,
    k: int = 10,
    warmup: float = 0.5,
    max_evaluations: int = 5000,
    retrain_every: int = 10_000,
    batch_models: Sequence[str] = ("als",),
    batch_weight: float = 1.0,
    seed: int = 0,
) -> ReplayResult:
    """Replay a time-ordered event frame (EVENT_COLUMNS) in one mode; see the module docstring."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    settings = settings or Settings()
    events = _with_seq(events.sort_values("ts", kind="stable"))
    cut = int(len(events) * warmup)
    warm, stream = events.iloc[:cut], events.iloc[cut:]
    replayer = _Replayer(settings, items, warm, batch_models if mode == "online+retrain" else (), batch_weight)
    if mode == "online+retrain":
        replayer.retrain()
    chosen = _evaluated_positions(events, cut, max_evaluations, seed)
    hits, gains, positions = [], [], []
    retrains = 1 if mode == "online+retrain" and replayer.batch_models else 0
    started = time.perf_counter()
    since_retrain = 0
    pending: list[int] = []
    stream_events = _events(stream)
    seqs = stream["seq"].to_numpy()
    for pos, event in enumerate(stream_events):
        if pos in chosen:
            answer = replayer.service.recommend(event.owner, k, Filters())
            ranked = [r.item_id for r in answer.items]
            rank = ranked.index(event.item_id) if event.item_id in ranked else -1
            hits.append(1.0 if rank >= 0 else 0.0)
            gains.append(1.0 / math.log2(rank + 2) if rank >= 0 else 0.0)
            positions.append(pos)
        if mode == "static":
            continue
        if mode == "retrained":
            pending.append(pos)
            if len(pending) >= retrain_every:
                replayer = replayer.rebuilt(stream.iloc[pending])
                pending = []
                retrains += 1
            continue
        replayer.state.apply(event, int(seqs[pos]))
        pending.append(pos)
        since_retrain += 1
        if mode == "online+retrain" and since_retrain >= retrain_every and replayer.batch_models:
            replayer.log.append(stream.iloc[pending])
            pending = []
            replayer.retrain()
            retrains += 1
            since_retrain = 0
    result = ReplayResult(mode, k, np.array(hits), np.array(gains), np.array(positions), time.perf_counter() - started, retrains)
    if mode == "online+retrain" and not replayer.batch_models:
        result.notes.append("no batch model available: online+retrain equals online")
    return result
