"""Demographic cold start (issue 14.5) on a planted shop over real HTTP: new users of segment A
get segment A's items, smoothed toward trending for small or unknown segments."""

from __future__ import annotations

import time

import numpy as np

from pulserec.events import Event
from pulserec.models.demographic import Demographic
from pulserec.records import ItemRecord

NOW = time.time() - 3600


def plant(client) -> None:
    """Germans buy the a-items, French the b-items; everyone views the c-items (the trending ones)."""
    client.put_items([{"item_id": f"{g}{k}", "title": f"{g.upper()}{k}"} for g in "abc" for k in range(5)])
    events = []
    for u in range(8):
        country, group = ("DE", "a") if u % 2 else ("FR", "b")
        client.put_user(f"{country}-{u}", {"country": country, "plan": "pro" if u < 4 else "free", "email": "x@y.z"})
        events += [{"user_id": f"{country}-{u}", "item_id": f"{group}{k}", "type": "purchase", "timestamp": NOW + u * 10 + k}
                   for k in range(5)]
        events += [{"user_id": f"{country}-{u}", "item_id": f"c{k}", "type": "view", "timestamp": NOW + u * 10 + k}
                   for k in range(5)] * 6
    client.send_events(events)


def test_new_users_of_a_segment_get_that_segments_items(client):
    plant(client)
    client.put_user("new-de", {"country": "DE"})
    client.put_user("new-fr", {"country": "FR", "age_band": "25-34"})
    de = client.recommend("new-de", n=5)["items"]
    fr = client.recommend("new-fr", n=5)["items"]
    assert {r["item_id"] for r in de} == {f"a{k}" for k in range(5)}
    assert {r["item_id"] for r in fr} == {f"b{k}" for k in range(5)}
    assert de[0]["reason"] == "popular with users of country DE"
    nobody = client.recommend("new-xx", n=5)["items"]  # no attributes: trending
    assert {r["item_id"] for r in nobody} != {f"a{k}" for k in range(5)}
    client.put_user("new-it", {"country": "IT", "email": "only undeclared or unseen values"})
    assert [r["item_id"] for r in client.recommend("new-it", n=5)["items"]] == [r["item_id"] for r in nobody]


def test_a_user_with_a_history_is_served_by_it(client):
    plant(client)
    client.put_user("old-de", {"country": "DE"})
    client.send_event(user_id="old-de", item_id="b0", type="view", timestamp=NOW + 500)
    assert client.recommend("old-de", n=1)["items"][0]["item_id"].startswith("b")


def test_small_segments_are_smoothed_toward_trending():
    class Source:
        def engagements(self, segments):
            return [{"x": 1.0} if value == "tiny" else {"x": 1000.0} for _, value in segments]

    class Catalog:
        item_ids = {"x": 0, "y": 1}

    class Popularity:
        def trending_scores(self, n):
            return np.array([0.0, 10.0])

    from pulserec.models.base import Query
    model = Demographic(Catalog(), Popularity(), Source(), ["country"], prior=20.0)
    tiny = model.score(Query(attrs={"country": "tiny"}), 2)
    big = model.score(Query(attrs={"country": "big"}), 2)
    assert tiny[1] > tiny[0] and big[0] > big[1]  # 1 event < 20 pseudo-events of trending; 1000 > 20
    assert np.isclose(tiny.sum(), 1.0) and model.score(Query(), 2) is None
    both = model.score(Query(attrs={"country": "tiny", "plan": "big"}), 2)
    assert np.allclose(both, tiny)  # "plan" is not a declared attribute of this model


def test_a_cold_request_reads_the_logs_head_once_for_all_its_segments(engine, monkeypatch):
    """Segments.engagements: the same engagement per (attribute, value) as one call each, with
    one read of the log's head (store.max_seq) for the request instead of one per attribute."""
    engine.put_items([ItemRecord(f"i{k}") for k in range(4)])
    for user, attrs in (("a", {"country": "DE", "plan": "pro"}), ("b", {"country": "DE", "plan": "free"})):
        engine.put_user(user, attrs)
        engine.ingest([Event(f"{user}{k}", user, f"i{k}", "view", NOW + k) for k in range(3)])
    segments = engine.segments
    asked = [("country", "DE"), ("plan", "pro"), ("plan", "free"), ("country", "FR")]
    one_by_one = [segments.engagement(a, v) for a, v in asked]
    reads = []
    real = segments.store.max_seq
    monkeypatch.setattr(segments.store, "max_seq", lambda: reads.append(1) or real())
    assert segments.engagements(asked) == one_by_one and len(reads) == 1
    assert one_by_one[0] and one_by_one[-1] == {}
