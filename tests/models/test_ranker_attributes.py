"""The ranker uses the users' declared attributes as features (issue 14.5), trained and served
through real engines (SQLite store, users table, LightGBM).

Planted shop: users on plan "pro" click the a-items, users on plan "free" the b-items; everyone
mostly views the neutral z-items, and the a- and b-items are equally popular. A held-out user's
history (a few z views, or nothing) says nothing about a or b: only their plan does. The same
ranker trained without attribute features (the setting `user_attributes` empty) cannot tell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.models.persist import load_model, save_model
from pulserec.models.ranker_training import TrainingOptions, prepare_log
from pulserec.records import ItemRecord
from pulserec.store.segments import LogSegments

pytest.importorskip("lightgbm")

START = 1_700_000_000.0
PER_CATEGORY = 12
SEGMENT = {"pro": "a", "free": "b"}
OPTIONS = TrainingOptions(depth=40, negatives=15, max_queries=800, rounds=120, positive_types=("click",), warmup=0.0)


def planted(n_users: int = 120, held_out: int = 30, seed: int = 0):
    """(items, users with attrs, training events, held-out users with attrs and their z views)."""
    rng = np.random.default_rng(seed)
    items = [ItemRecord(f"{c}{k:02d}", title=f"{c}{k}", category=c, created_ts=START - 86_400)
             for c in "abz" for k in range(PER_CATEGORY)]
    users = {f"u{u}": {"plan": "pro" if u % 2 else "free", "country": str(rng.choice(["DE", "FR"]))}
             for u in range(n_users)}
    events, ts = [], START
    for step in range(12):
        for user in rng.permutation(n_users):
            ts += 20.0
            plan = users[f"u{user}"]["plan"]
            clicked = rng.random() < 0.4
            item = f"{SEGMENT[plan] if clicked else 'z'}{rng.integers(PER_CATEGORY):02d}"
            events.append(Event(f"e{len(events)}", f"u{user}", item, "click" if clicked else "view", ts))
    heldout = {f"new{u}": {"plan": "pro" if u % 2 else "free", "country": "DE"} for u in range(held_out)}
    views = [Event(f"h{u}-{k}", user, f"z{rng.integers(PER_CATEGORY):02d}", "view", ts + 60.0 + u * 3 + k)
             for u, user in enumerate(heldout) if u % 3 for k in range(3)]  # every third one has no events at all
    return items, users, events, heldout, views


def engine_with(tmp_path, name: str, attributes: tuple[str, ...]) -> Engine:
    items, users, events, heldout, _ = planted()
    engine = Engine(Settings.load(tmp_path / name, user_attributes=attributes))
    engine.put_items(items)
    engine.put_users([(u, attrs, None) for u, attrs in {**users, **heldout}.items()])
    engine.ingest(events)
    engine.training.ranker.train(options=OPTIONS)
    engine.ingest(planted()[4])  # the held-out users arrive after training
    return engine


def segment_share(engine: Engine) -> float:
    """Mean share, over the held-out users' top 10 a/b items of the ranker, of their plan's category."""
    shares = []
    for user, attrs in planted()[3].items():
        answer = engine.recommend(user, 10, strategy="ranker")
        assert answer.strategy == "ranker" and answer.items
        picked = [r.category for r in answer.items if r.category in ("a", "b")]
        assert picked, [r.item_id for r in answer.items]
        shares.append(np.mean([c == SEGMENT[attrs["plan"]] for c in picked]))
    return float(np.mean(shares))


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranker-attrs")
    with_attrs, without = engine_with(root, "with", ("plan", "country")), engine_with(root, "without", ())
    yield with_attrs, without
    with_attrs.close()
    without.close()


def test_attribute_features_beat_the_same_ranker_without_them_on_held_out_users(engines):
    with_attrs, without = engines
    ranked, blind = segment_share(with_attrs), segment_share(without)
    assert ranked >= 0.8, (ranked, blind)
    assert blind <= 0.7 and ranked - blind >= 0.25, (ranked, blind)
    ranker = with_attrs.service.strategies["ranker"]
    importance = ranker.feature_importance
    assert {"user:plan", "user:country", "segment_score"} <= set(importance)
    assert importance["user:plan"] + importance["segment_score"] > 0
    assert not any(name.startswith("user:") or name == "segment_score"
                   for name in without.service.strategies["ranker"].feature_importance)


def test_serving_builds_the_training_features_and_a_saved_model_keeps_them(engines, tmp_path):
    ranker = engines[0].service.strategies["ranker"]
    features = ranker.model.features
    assert list(features.attributes) == ["plan", "country"] and features.attributes["plan"].codes == {"free": 1, "pro": 2}
    names = features.names
    assert [names[i] for i in features.categorical][-2:] == ["user:plan", "user:country"]
    save_model(ranker.model, tmp_path / "ranker.model")
    loaded, _ = load_model(tmp_path / "ranker.model", expected="ranker")
    assert loaded.features.names == names and list(loaded.features.attributes) == ["plan", "country"]
    engine = engines[0]
    with engine.lock:  # the same features for a warm held-out user: their plan is a column of every row
        query = engine.service.query_for(engine.user_key("new1"), with_attrs=True)
        found, matrix = ranker.candidates(query, len(engine.state.catalog))
    assert query.attrs == {"plan": "pro", "country": "DE"} and not query.is_cold
    plan = matrix[:, names.index("user:plan")]
    assert (plan == features.attributes["plan"].code("pro")).all()
    segment = matrix[:, names.index("segment_score")]
    categories = np.array([engine.state.catalog.category_of(int(i)) for i in found.items])
    assert segment[categories == "a"].mean() > segment[categories == "b"].mean()  # pro users' segment likes a
    np.testing.assert_allclose(loaded.predict(matrix), ranker.model.predict(matrix))
    # a user who declared nothing has no attributes in the query (their codes are 0: unknown)
    with engine.lock:
        plain = engine.service.query_for(engine.user_key("u-none"), with_attrs=True)
    assert plain.attrs == {}


def test_replayed_segments_equal_the_served_ones_and_never_see_later_events(engines):
    """The training's segments (LogSegments over the log) are the store's (Segments over SQLite)
    at the log's end, and as of an earlier position they count only the events before it."""
    engine = engines[0]
    log = prepare_log(pd.concat(list(engine.store.iter_events()), ignore_index=True))
    replayed = LogSegments(log, engine.store.user_attrs(), engine.settings.weighting, engine.settings.trending_halflife)
    replayed.at(len(log))
    for attribute, value in (("plan", "pro"), ("plan", "free"), ("country", "DE")):
        served, got = engine.segments.engagement(attribute, value), replayed.engagement(attribute, value)
        assert served and set(got) == set(served)
        np.testing.assert_allclose([got[i] for i in served], list(served.values()), rtol=1e-9)
    assert set(replayed.engagement("plan", "pro")) <= {f"a{k:02d}" for k in range(PER_CATEGORY)} | {
        f"z{k:02d}" for k in range(PER_CATEGORY)}
    early = LogSegments(log, engine.store.user_attrs(), engine.settings.weighting, engine.settings.trending_halflife)
    early.at(40)
    before = log.iloc[:40]
    pro = {u for u, a in engine.store.user_attrs().items() if a.get("plan") == "pro"}
    assert set(early.engagement("plan", "pro")) == set(before[before["owner"].isin(pro)]["item_id"])


def test_a_state_rebuild_carries_the_attribute_features_over(engines):
    """After a rebuild the served ranker reads the new model set's segment model (not the old state's).
    On the module's engine (not a third one trained alike): a rebuild serves the same answers, so
    a test after this one would see what it saw before."""
    engine = engines[0]
    before = segment_share(engine)
    old_state = engine.state
    engine.rebuilds.rebuild()
    ranker = engine.service.strategies["ranker"]
    assert engine.state is not old_state  # a rebuild happened: the ranker below follows a new state
    assert ranker.segment is engine.service.models.segment and ranker.state is engine.state
    assert segment_share(engine) == pytest.approx(before)
