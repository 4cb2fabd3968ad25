"""The two-stage ranker: it must learn a planted context effect, and only from the context.

Planted log: every user switches device at random, event by event; on mobile they click items
of category "x", on desktop items of category "y" (plus neutral "z" views on either). History
carries no hint of the current device, so only the request context can separate x from y."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pulserec.config import Settings
from pulserec.events import Event
from pulserec.models.base import Query
from pulserec.models.ranker import Ranker
from pulserec.models.ranker_features import allowed_items, recall
from pulserec.models.ranker_training import (
    TrainingOptions,
    label_impressions,
    online_sources,
    prepare_log,
    train_ranking_model,
)
from pulserec.models.query import build_query
from pulserec.online.state import OnlineState
from pulserec.records import ItemRecord
from pulserec.store.sqlite import EVENT_COLUMNS

ITEMS_PER_CATEGORY = 15
START = 1_700_000_000.0


def planted_catalog() -> list[ItemRecord]:
    return [ItemRecord(f"{cat}{i:02d}", category=cat, price=10.0 + i, created_ts=START - 86_400)
            for cat in "xyz" for i in range(ITEMS_PER_CATEGORY)]


def planted_log(n_users: int = 70, events_per_user: int = 40, seed: int = 0, shuffle_devices: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    ts = START
    for step in range(events_per_user):
        for user in rng.permutation(n_users):
            ts += 30.0
            device = "mobile" if rng.random() < 0.5 else "desktop"
            category = "z" if rng.random() < 0.25 else ("x" if device == "mobile" else "y")
            item = f"{category}{rng.integers(ITEMS_PER_CATEGORY):02d}"
            rows.append({"event_id": f"e{len(rows)}", "user_id": f"u{user}", "item_id": item,
                         "type": "view" if category == "z" else "click", "ts": ts, "device": device})
    frame = pd.DataFrame(rows)
    if shuffle_devices:  # the negative control: same log, device no longer tied to the category
        frame["device"] = rng.permutation(frame["device"].to_numpy())
    frame["context"] = [json.dumps({"device": d}) for d in frame.pop("device")]
    for column in EVENT_COLUMNS:
        if column not in frame:
            frame[column] = None
    return frame[list(EVENT_COLUMNS)]


def live_state(log: pd.DataFrame, items: list[ItemRecord], settings: Settings) -> OnlineState:
    state = OnlineState(settings)
    for record in items:
        state.catalog.upsert(record)
    state.apply_frame(prepare_log(log))
    add_probe_user(state)
    return state


def train(log, items, settings, **options):
    opts = TrainingOptions(depth=50, negatives=15, max_queries=1200, rounds=200, **options)
    return train_ranking_model(log, items, settings, options=opts)


PROBE_HISTORY = ("x00", "y00", "z00", "x01", "y01", "z01")


def add_probe_user(state: OnlineState) -> None:
    """A user whose history is balanced: one click on each of PROBE_HISTORY, devices alternating."""
    for k, item in enumerate(PROBE_HISTORY):
        state.apply(Event(f"probe-{k}", "probe", item, "click", state.now + 30.0, context={"device": ("mobile", "desktop")[k % 2]}))


def probe_query(state: OnlineState, device: str | None) -> Query:
    """The probe user's query: the same history whatever the request's device."""
    owner = state.owners.get("probe")
    return build_query(owner, state.histories.recent(owner), max_items=20, position_decay=4.0, now=state.now,
                       n_items=len(state.catalog), context={"device": device} if device else {})


def top_categories(ranker: Ranker, state: OnlineState, device: str, n: int = 10) -> list[str]:
    scores = ranker.score(probe_query(state, device), len(state.catalog))
    return [state.catalog.category_of(int(i)) for i in np.argsort(-scores, kind="stable")[:n]]


def x_over_y(ranker: Ranker, state: OnlineState, device: str) -> float:
    """Share of (x item, y item) candidate pairs that the ranker orders x first (a pairwise AUC)."""
    scores = ranker.score(probe_query(state, device), len(state.catalog))
    categories = np.array([state.catalog.category_of(i) for i in range(len(state.catalog))])
    x, y = scores[(categories == "x") & np.isfinite(scores)], scores[(categories == "y") & np.isfinite(scores)]
    assert len(x) >= 10 and len(y) >= 10
    return float((x[:, None] > y[None, :]).mean())


@pytest.fixture(scope="module")
def planted():
    settings = Settings()
    items = planted_catalog()
    log = planted_log()
    model = train(log, items, settings)
    state = live_state(log, items, settings)
    ranker = Ranker(online_sources(state), state, model)
    return settings, items, log, state, ranker


def test_ranker_learns_the_planted_device_effect(planted):
    pytest.importorskip("lightgbm")  # the logistic fallback has no feature interactions to learn it with
    _, _, _, state, ranker = planted
    on_mobile, on_desktop = x_over_y(ranker, state, "mobile"), x_over_y(ranker, state, "desktop")
    assert on_mobile >= 0.75 and on_desktop <= 0.35 and on_mobile - on_desktop >= 0.5, (on_mobile, on_desktop)
    mobile, desktop = top_categories(ranker, state, "mobile"), top_categories(ranker, state, "desktop")
    assert mobile.count("x") > 2 * mobile.count("y"), mobile
    assert desktop.count("y") > 2 * desktop.count("x"), desktop
    assert ranker.feature_importance["device"] > 0


def test_without_the_planted_link_the_context_cannot_separate(planted):
    """Negative control: with devices shuffled the same training cannot tell x from y by device."""
    settings, items, _, _, _ = planted
    log = planted_log(shuffle_devices=True)
    state = live_state(log, items, settings)
    ranker = Ranker(online_sources(state), state, train(log, items, settings))
    assert abs(x_over_y(ranker, state, "mobile") - x_over_y(ranker, state, "desktop")) < 0.2


def test_features_are_finite_even_for_unknown_values(planted):
    settings, items, log, _, trained = planted
    state = live_state(log, items, settings)
    ranker = Ranker(online_sources(state), state, trained.model)
    state.catalog.upsert(ItemRecord("no-meta"))  # no category, price or creation time
    state.popularity.add(state.catalog.item_ids.get("no-meta"), 1.0, state.now)
    for device in ("mobile", "smart-fridge", None):
        query = probe_query(state, device)
        found, matrix = ranker.candidates(query, len(state.catalog))
        assert len(found) > 0 and matrix.shape == (len(found), len(ranker.model.features.names))
        assert np.isfinite(matrix).all()
    assert state.catalog.item_ids.get("no-meta") in found.items


def test_only_recall_candidates_get_finite_scores(planted):
    settings, _, _, state, ranker = planted
    narrow = Ranker(ranker.sources, state, ranker.model, depth=5)
    owner = state.owners.get("u3")
    query = build_query(owner, state.histories.recent(owner), max_items=settings.query_len,
                        position_decay=settings.position_decay, now=state.now, n_items=len(state.catalog))
    n = len(state.catalog)
    scores = narrow.score(query, n)
    expected = recall(narrow.sources, query, n, 5, allowed_items(state, query, n)).items
    assert 0 < len(expected) <= 10
    assert set(np.flatnonzero(np.isfinite(scores))) == set(expected.tolist())
    assert (scores[expected] > 0).all()
    assert np.isneginf(scores[list(state.histories.seen(owner))]).all()  # seen items are not candidates


def test_save_load_round_trip_gives_identical_scores(planted, tmp_path):
    settings, _, _, state, ranker = planted
    ranker.save(tmp_path / "ranker.model")
    loaded = Ranker.load(tmp_path / "ranker.model", ranker.sources, state)
    for device in ("mobile", "desktop"):
        query = probe_query(state, device)
        assert np.array_equal(ranker.score(query, len(state.catalog)), loaded.score(query, len(state.catalog)))
    assert loaded.feature_importance == ranker.feature_importance


def test_feature_importance_and_explanations(planted):
    settings, _, _, state, ranker = planted
    importance = ranker.feature_importance
    assert importance and set(importance) == set(ranker.model.features.names)
    assert sum(importance.values()) > 0
    query = probe_query(state, "mobile")
    scores = ranker.score(query, len(state.catalog))
    top = np.argsort(-scores)[:5]
    reasons = ranker.explain(query, top)
    assert len(reasons) == 5 and all(r is not None and r.kind in ("history", "trending") for r in reasons)


def test_logistic_fallback_trains_and_scores(planted):
    settings, items, log, state, _ = planted
    model = train_ranking_model(log, items, settings, options=TrainingOptions(depth=50, max_queries=300, backend="logistic"))
    ranker = Ranker(online_sources(state), state, model)
    scores = ranker.score(probe_query(state, "mobile"), len(state.catalog))
    finite = scores[np.isfinite(scores)]
    assert len(finite) > 10 and (finite > 0).all() and (finite < 1).all()
    assert model.learner.kind == "logistic" and sum(ranker.feature_importance.values()) > 0


def test_train_ranker_installs_on_a_live_engine(engine, shop):
    from pulserec.ingest.importer import normalise_events

    engine.put_items(shop.items)
    events, _ = normalise_events(shop.events, engine.settings.event_weights)
    engine.ingest_frame(events)
    ranker = engine.training.ranker.train(options=TrainingOptions(max_queries=300, rounds=50))
    assert engine.service.strategies["ranker"] is ranker
    assert ranker.meta["feature_importance"] and ranker.meta["queries"] > 100
    json.dumps(ranker.meta)  # GET /models serialises it
    user = str(shop.events["user_id"].iloc[-1])
    answer = engine.recommend(user, 10, strategy="ranker", context={"device": "mobile"})
    assert answer.strategy == "ranker" and len(answer.items) == 10
    assert any(r.source == "ranker" for r in answer.items)
    engine.rebuilds.rebuild()  # the ranker follows the rebuilt state and its live sources
    rebuilt = engine.service.strategies["ranker"]
    assert rebuilt.state is engine.state and rebuilt.sources["item_knn"] is engine.service.item_knn
    again = engine.recommend(user, 10, strategy="ranker", context={"device": "mobile"})
    assert [r.item_id for r in again.items] == [r.item_id for r in answer.items]


def test_auto_backend_falls_back_to_logistic_without_lightgbm(monkeypatch):
    import pulserec.models.ranker_learners as learners

    monkeypatch.setattr(learners, "lightgbm_available", lambda: False)
    assert learners.make_learner("auto", [0]).kind == "logistic"


def test_impression_labels_match_by_recommendation_or_by_time_window():
    shown = pd.DataFrame({"recommendation_id": ["r1", "r1", "r1", "r2"], "user_id": ["a", "a", "a", "b"],
                          "item_id": ["i1", "i2", "i3", "i1"], "ts": [100.0, 100.0, 100.0, 100.0]})
    later = pd.DataFrame({"user_id": ["a", "a", "a", "b"], "item_id": ["i1", "i2", "i2", "i1"],
                          "ts": [150.0, 160.0, 170.0, 50.0], "type": ["click", "click", "purchase", "purchase"]})
    assert label_impressions(shown, later, window=3600).tolist() == [1, 3, 0, 0]  # b bought i1 before it was shown
    by_id = later.assign(recommendation_id=["r1", "r2", "r2", "r2"])
    assert label_impressions(shown, by_id, window=3600).tolist() == [1, 0, 0, 3]


def test_training_from_impressions(planted):
    pytest.importorskip("lightgbm")
    """Logged impressions: on each click, what was shown was the clicked item and four others."""
    settings, items, log, _, _ = planted
    rng = np.random.default_rng(5)
    clicks = log[(log["type"] == "click")].iloc[len(log) // 4:]
    rows = []
    for k, event in enumerate(clicks.itertuples(index=False)):
        others = rng.choice([r.item_id for r in items if r.item_id != event.item_id], 4, replace=False)
        for item in (event.item_id, *others):
            rows.append({"recommendation_id": f"rec{k}", "user_id": event.user_id, "item_id": item, "ts": event.ts - 1.0,
                         "context": event.context})
    impressions = pd.DataFrame(rows)
    model = train_ranking_model(log, items, settings, impressions=impressions, labels=log,
                                options=TrainingOptions(depth=50, max_queries=800, rounds=100))
    assert model.stats["impression_queries"] == 800 and model.stats["queries"] > 800  # + sampled before the first
    state = live_state(log, items, settings)
    ranker = Ranker(online_sources(state), state, model)
    assert x_over_y(ranker, state, "mobile") - x_over_y(ranker, state, "desktop") >= 0.5
