"""Training data for the ranker from a time-ordered event log, and the training itself.

The log is replayed through a fresh :class:`OnlineState`, so every training query sees the
catalogue, counters, co-occurrences, history and profile *as they were* when it was asked
(no leakage of the label into the features). Query points come from one of two places:

- impressions (what was shown, per recommendation id), labelled by the clicks, add-to-carts
  and purchases that followed them (graded: click 1, add_to_cart 2, purchase 3);
- where impressions are missing (no impressions given, or the part of the log before the first
  one was recorded), negative sampling: for sampled first-time (user, item) events, the query is the
  user's history just before the event; the recall candidates are taken, the actual item is
  labelled 1 and `negatives` other candidates 0. Events whose item was not recalled are
  counted as recall misses and skipped (the ranker can only reorder what recall found).

With the users' declared attributes (`user_attrs`: user id -> attrs, as stored by PUT /users),
each query carries its user's attributes and the features include them with the segment model's
score over the replay (store/segments.py:LogSegments: each segment as it was at that point).

Sources that are not rebuilt over the replayed state (e.g. a batch model trained on the whole
log) see the future during training; `sources_for` decides what each source is."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from pulserec.config import Settings
from pulserec.events import events_from_frame, owner_keys
from pulserec.models.base import Query, Recommender
from pulserec.models.demographic import Demographic, declared_attributes
from pulserec.models.item_knn import ItemKNN
from pulserec.models.popularity import Trending
from pulserec.models.ranker_features import FeatureBuilder, allowed_items, describe, recall
from pulserec.models.ranker_learners import RankingModel, make_learner
from pulserec.records import ItemRecord
from pulserec.online.state import OnlineState
from pulserec.store.segments import LogSegments
from pulserec.models.query import serving_query

#: Relevance grade of the events that follow an impression.
LABEL_GAINS: dict[str, int] = {"click": 1, "add_to_cart": 2, "purchase": 3}

SourceFactory = Callable[[OnlineState], Mapping[str, Recommender]]


def online_sources(state: OnlineState) -> dict[str, Recommender]:
    """The default candidate sources, over the given state: item-kNN and trending."""
    trending = Trending(state.popularity)
    trending.catalog = state.catalog
    return {"item_knn": ItemKNN(state.cooc), "trending": trending}


@dataclass
class TrainingOptions:
    depth: int = 100  # recall: top-M per source
    negatives: int = 20  # negative sampling: sampled candidates per positive
    max_queries: int = 4000  # training queries (sampled positives or impressions)
    warmup: float = 0.2  # negative sampling: positives come from after this share of the log
    positive_types: tuple[str, ...] | None = None  # None: every item event type
    label_window: float = 86_400.0  # impressions: an event this long after the impression labels it
    backend: str = "auto"  # "lightgbm", "logistic" or "auto"
    objective: str = "lambdarank"  # or "binary"
    rounds: int = 200
    seed: int = 0


@dataclass(frozen=True)
class QueryPoint:
    """One training query: featurised after the first `position` log events are applied."""

    position: int
    owner: str
    ts: float
    context: dict[str, Any]
    items: tuple[str, ...]  # impressions: shown items; sampling: (the positive item,)
    labels: tuple[int, ...] | None = None  # impressions: grade per shown item; sampling: None


@dataclass
class TrainingSet:
    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray  # rows per query, in row order
    recall_misses: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


def _contexts(column: pd.Series | None, n: int) -> list[dict[str, Any]]:
    if column is None:
        return [{} for _ in range(n)]
    out = []
    for value in column.tolist():
        if isinstance(value, str) and value:
            value = json.loads(value)
        out.append(value if isinstance(value, dict) else {})
    return out


def prepare_log(events: pd.DataFrame) -> pd.DataFrame:
    """Stored events (EVENT_COLUMNS, context as JSON text) in time order, with `seq` and `owner`."""
    log = events.sort_values("ts", kind="stable").reset_index(drop=True)
    if "seq" not in log:
        log = log.assign(seq=np.arange(1, len(log) + 1))
    return log.assign(owner=owner_keys(log))


def event_points(log: pd.DataFrame, contexts: list[dict[str, Any]], options: TrainingOptions,
                 rng: np.random.Generator) -> list[QueryPoint]:
    """Sampled first-time (owner, item) events after the warm-up share of the log."""
    eligible = log["item_id"].notna().to_numpy() & ~log.duplicated(["owner", "item_id"]).to_numpy()
    if options.positive_types is not None:
        eligible &= log["type"].isin(options.positive_types).to_numpy()
    eligible[: int(len(log) * options.warmup)] = False
    rows = np.flatnonzero(eligible)
    rows = np.sort(rng.choice(rows, min(options.max_queries, len(rows)), replace=False))
    owners, items, stamps = log["owner"].to_numpy(), log["item_id"].to_numpy(), log["ts"].to_numpy()
    return [QueryPoint(int(r), str(owners[r]), float(stamps[r]), contexts[r], (str(items[r]),)) for r in rows]


def label_impressions(impressions: pd.DataFrame, labels: pd.DataFrame, window: float) -> np.ndarray:
    """Grade per impression row: the best LABEL_GAINS event on the same item that followed it
    (matched by recommendation_id where the labels carry one, else by user within `window`)."""
    shown = impressions.reset_index(drop=True).assign(row=lambda f: np.arange(len(f)))
    if "recommendation_id" not in labels and "rec_id" in labels:  # stored events name it rec_id
        labels = labels.rename(columns={"rec_id": "recommendation_id"})
    graded = labels.assign(gain=labels["type"].map(LABEL_GAINS)).dropna(subset=["gain"])
    if "recommendation_id" in graded and graded["recommendation_id"].notna().any():
        hits = shown.merge(graded[["recommendation_id", "item_id", "gain"]], on=["recommendation_id", "item_id"])
    else:
        hits = shown.merge(graded[["user_id", "item_id", "ts", "gain"]], on=["user_id", "item_id"], suffixes=("", "_label"))
        hits = hits[(hits["ts_label"] >= hits["ts"]) & (hits["ts_label"] <= hits["ts"] + window)]
    grades = np.zeros(len(shown), dtype=np.int32)
    best = hits.groupby("row")["gain"].max()
    grades[best.index.to_numpy()] = best.to_numpy(dtype=np.int32)
    return grades


def impression_points(log: pd.DataFrame, impressions: pd.DataFrame, labels: pd.DataFrame,
                      options: TrainingOptions) -> list[QueryPoint]:
    """One query per recommendation id: the items shown, graded by what followed."""
    shown = impressions.reset_index(drop=True).assign(grade=label_impressions(impressions, labels, options.label_window))
    contexts = _contexts(shown["context"] if "context" in shown else None, len(shown))
    shown = shown.assign(context=contexts)
    stamps = log["ts"].to_numpy()
    points = []
    for _, group in shown.groupby("recommendation_id", sort=False):
        ts = float(group["ts"].min())
        points.append(QueryPoint(int(np.searchsorted(stamps, ts, side="left")), str(group["user_id"].iloc[0]), ts,
                                 group["context"].iloc[0], tuple(group["item_id"].astype(str)), tuple(group["grade"].tolist())))
    points.sort(key=lambda p: p.position)
    return points[-options.max_queries:]


class _Replay:
    """A fresh online state that follows the log up to each query point (and the segments of
    the users' declared attributes with it)."""

    def __init__(self, log: pd.DataFrame, items: Sequence[ItemRecord], settings: Settings, start: int,
                 user_attrs: Mapping[str, Mapping[str, Any]]) -> None:
        self.settings = settings
        self.state = OnlineState(settings)
        for record in items:
            self.state.catalog.upsert(record)
        self.state.apply_frame(log.iloc[:start])
        self.start = start
        self.cursor = start
        self.pending = events_from_frame(log.iloc[start:])
        self.seqs = log["seq"].to_numpy()
        self.user_attrs = user_attrs
        self.segments = LogSegments(log, user_attrs, settings.weighting, settings.trending_halflife) if user_attrs else None
        self.segment = Demographic(self.state.catalog, self.state.popularity, self.segments, settings.user_attributes,
                                   prior=settings.segment_prior) if self.segments is not None else None

    def advance(self, position: int) -> None:
        while self.cursor < position:
            self.state.apply(self.pending[self.cursor - self.start], int(self.seqs[self.cursor]))
            self.cursor += 1
        if self.segments is not None:
            self.segments.at(self.cursor)

    def query(self, point: QueryPoint) -> Query:
        state = self.state
        owner = state.owners.get(point.owner)
        query = serving_query(owner, state.histories.recent(owner), self.settings, now=point.ts,
                              n_items=len(state.catalog), context=point.context, seen=state.histories.seen(owner),
                              support=state.histories.owner_counts)
        attrs = declared_attributes(self.user_attrs.get(point.owner, {}), self.settings.user_attributes)
        return replace(query, attrs=attrs) if attrs else query


def build_training_set(log: pd.DataFrame, items: Sequence[ItemRecord], settings: Settings, sources_for: SourceFactory,
                       features: FeatureBuilder | None, points: list[QueryPoint], options: TrainingOptions,
                       contexts: list[dict[str, Any]], user_attrs: Mapping[str, Mapping[str, Any]] | None = None,
                       ) -> tuple[FeatureBuilder, TrainingSet]:
    """Replay `log` and featurise every query point; fits the feature vocabularies if not given."""
    rng = np.random.default_rng(options.seed + 1)
    owners = set(log["owner"].tolist())
    user_attrs = {u: a for u, a in (user_attrs or {}).items() if u in owners and a}  # the log's users only
    replay = _Replay(log, items, settings, points[0].position if points else len(log), user_attrs)
    sources = dict(sources_for(replay.state))
    if features is None:
        catalog_names = {r.category for r in items if r.category} | set(replay.state.catalog.categories.ids)
        features = FeatureBuilder.fit(list(sources), options.depth, catalog_names, [*contexts, *(p.context for p in points)],
                                      user_attrs.values(), settings.user_attributes)
    blocks, labels, groups, misses, from_impressions = [], [], [], 0, 0
    for point in points:
        replay.advance(point.position)
        state, query = replay.state, replay.query(point)
        n_items = len(state.catalog)
        allowed = allowed_items(state, query, n_items)
        indices = [state.catalog.item_ids.get(i) for i in point.items]
        if point.labels is not None:  # an impression: the shown items as they are
            keep = [k for k, idx in enumerate(indices) if idx is not None]
            shown = np.array([indices[k] for k in keep], dtype=np.int64)
            if len(shown) < 2:
                continue
            found = describe(sources, query, n_items, options.depth, allowed, shown)
            grades = np.array([point.labels[k] for k in keep], dtype=np.int32)
            from_impressions += 1
        else:  # negative sampling among the recall candidates
            found = recall(sources, query, n_items, options.depth, allowed)
            target = indices[0]
            hit = np.flatnonzero(found.items == target) if target is not None else np.empty(0, dtype=np.int64)
            others = np.flatnonzero(found.items != target)
            if len(hit) == 0 or len(others) == 0:
                misses += 1
                continue
            negatives = rng.choice(others, min(options.negatives, len(others)), replace=False)
            found = found.subset(np.concatenate([hit, negatives]))
            grades = np.zeros(len(found), dtype=np.int32)
            grades[0] = 1
        blocks.append(features.transform(state, query, found, replay.segment))
        labels.append(grades)
        groups.append(len(grades))
    width = len(features.names)
    training = TrainingSet(
        np.vstack(blocks) if blocks else np.empty((0, width)),
        np.concatenate(labels) if labels else np.empty(0, dtype=np.int32),
        np.array(groups, dtype=np.int64),
        misses,
    )
    sampled = len(groups) - from_impressions
    training.stats = {"queries": len(groups), "impression_queries": from_impressions, "rows": int(training.groups.sum()),
                      "recall_misses": misses, "recall_hit_rate": round(sampled / max(sampled + misses, 1), 4)}
    return features, training


def train_ranking_model(
    events: pd.DataFrame,
    items: Sequence[ItemRecord],
    settings: Settings,
    sources_for: SourceFactory = online_sources,
    impressions: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    options: TrainingOptions | None = None,
    user_attrs: Mapping[str, Mapping[str, Any]] | None = None,
) -> RankingModel:
    """Train a ranking model on a stored event log (EVENT_COLUMNS; context as JSON text).

    `user_attrs` (user id -> declared attributes, as stored) adds the attribute features of the
    setting `user_attributes` that the log's users declare.

    With `impressions` (recommendation_id, user_id, item_id, ts, context) and `labels` (events
    with user_id, item_id, ts, type, optionally recommendation_id), the shown lists are the
    training queries, and the log before the first impression is used by negative sampling over
    the recall candidates; without them, negative sampling throughout."""
    options = options or TrainingOptions()
    started = time.perf_counter()
    log = prepare_log(events)
    contexts = _contexts(log["context"] if "context" in log else None, len(log))
    points = event_points(log, contexts, options, np.random.default_rng(options.seed))
    if impressions is not None and len(impressions):
        shown = impression_points(log, impressions, labels if labels is not None else log, options)
        before_impressions = [p for p in points if p.position < shown[0].position] if shown else points
        points = sorted(before_impressions + shown, key=lambda p: p.position)
    features, training = build_training_set(log, items, settings, sources_for, None, points, options, contexts,
                                            user_attrs)
    if training.groups.sum() == 0 or not (training.labels > 0).any():
        raise ValueError("no training queries with a positive label: the log is too short or recall never finds the item")
    learner = make_learner(options.backend, features.categorical, options.rounds, options.objective)
    learner.fit(training.features, training.labels, training.groups)
    stats = {**training.stats, "trained_on_events": len(log), "train_seconds": round(time.perf_counter() - started, 2)}
    return RankingModel(features, learner, stats)
