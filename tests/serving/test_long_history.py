"""Issue 13.4: the last event drowned the rest. MovieLens user 1 has 232 ratings, yet 8 of 10
default recommendations said "because you rated 20 Dates (1998)", the latest one. The default
query now holds the whole history too (`long_term_weight`, chosen on validation) and each
explanation names the history item that added most to that recommendation's score."""

from __future__ import annotations

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine

USER = "1"


@pytest.fixture(scope="module")
def movielens_engine(movielens, tmp_path_factory):
    from pulserec.ingest.movielens import read_movies, read_ratings

    frame = read_ratings(movielens)
    engine = Engine(Settings.load(tmp_path_factory.mktemp("ml"), auto_train_min_events=0))
    engine.put_items(read_movies(movielens))
    engine.ingest_frame(frame)
    yield engine, frame[frame["user_id"] == USER].sort_values(["ts", "item_id"], kind="stable")
    engine.close()


@pytest.mark.movielens
def test_user_1s_explanations_are_not_the_latest_rating(movielens_engine):
    engine, history = movielens_engine
    latest = engine.state.catalog.get(history["item_id"].iloc[-1]).title
    assert latest == "20 Dates (1998)" and len(history) == 232
    reasons = [r.reason for r in engine.recommend(USER, 10).items]
    assert len(reasons) == 10 and all(reasons)
    assert sum(latest in reason for reason in reasons) <= 2  # was 8 of 10
    assert len(set(reasons)) >= 3  # several of the user's items explain their top 10


@pytest.mark.movielens
def test_the_default_query_holds_recent_intent_and_the_whole_history(movielens_engine):
    engine, history = movielens_engine
    settings = engine.settings
    query = engine.read(lambda state: engine.service.query_for(USER))
    assert settings.long_term_weight > 0
    assert len(query.items) == history["item_id"].nunique() == 232  # every rated movie, not the last 20
    weights = dict(zip(query.items.tolist(), query.weights))
    recent = query.items[: settings.query_len].tolist()
    older = [item for item in query.items.tolist() if item not in recent]
    assert weights[recent[0]] > weights[older[0]]  # the latest counts most...
    assert sum(weights[i] for i in older) > sum(weights[i] for i in recent)  # ...the long history counts too
