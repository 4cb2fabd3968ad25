"""Issue 13.3: decay is read at a clock that makes sense for the data.

On main, after importing MovieLens every profile interest read 0.0 (user 1 was last active in
2000, 18 years before the data's end, and interests were read at the engine's clock) and a
single live event moved the clock to today, after which trending showed zeros. Now: the newest
event time for an imported history, the wall clock for live traffic (read_clock), interests
as of the user's own last event, and scores to four significant digits instead of 0.0."""

from __future__ import annotations

import time

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.decay import read_clock
from pulserec.runtime.insights import trending_items

DAY = 86_400.0


def test_the_clock_rule():
    wall = 2_000_000_000.0
    assert read_clock(wall - 3600, wall, DAY) == wall  # live: the wall clock (scores keep fading)
    assert read_clock(wall + 600, wall, DAY) == wall + 600  # an event slightly ahead of this clock
    assert read_clock(wall - 30 * DAY, wall, DAY) == wall - 30 * DAY  # a history: its newest event
    assert read_clock(float("-inf"), wall, DAY) == wall  # nothing applied yet


@pytest.mark.movielens
def test_an_imported_movielens_history_has_meaningful_profiles_and_trending(movielens, tmp_path):
    from pulserec.ingest.movielens import read_movies, read_ratings

    engine = Engine(Settings.load(tmp_path))
    engine.put_items(read_movies(movielens))
    ratings = read_ratings(movielens)
    engine.ingest_frame(ratings)
    newest = float(ratings["ts"].max())
    assert engine.clock() == newest  # the data's own now, not today

    profile = engine.profile("1")  # last active in 2000, 18 years before the data ends
    categories = profile["interests"]["categories"]
    assert profile["interests_as_of"] == profile["last_seen"]
    assert categories and all(c["score"] > 0 for c in categories)
    rated = ratings[ratings["user_id"] == "1"]["item_id"]
    genre_counts = {}
    for item in rated:
        genre = engine.state.catalog.get(item).category
        genre_counts[genre] = genre_counts.get(genre, 0) + 1
    assert categories[0]["name"] in sorted(genre_counts, key=genre_counts.get, reverse=True)[:3]
    assert "dormant" in profile["segments"]  # dormancy is still measured against the clock

    trending = trending_items(engine, 10)
    assert len(trending) == 10 and all(t["score"] > 0 for t in trending)
    recent = set(ratings[ratings["ts"] > newest - 60 * DAY]["item_id"])
    assert all(t["item_id"] in recent for t in trending)  # hot at the end of the data

    # The first live event moves the clock to the wall clock: history counts at its real age.
    engine.ingest([Event("live-1", "1", "260", "view", time.time())])
    assert abs(engine.clock() - time.time()) < 60
    trending = trending_items(engine, 10)
    assert trending[0]["item_id"] == "260" and trending[1]["score"] > 0  # small, but not rounded to 0.0
    assert engine.profile("1")["interests"]["categories"][0]["score"] > 0
    engine.close()
