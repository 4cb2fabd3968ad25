"""The dashboard's history from the stored log: exact counts per hour on a hand-made log."""

from __future__ import annotations

import pytest

from pulserec.ingest.schemas import EventIn
from pulserec.records import ItemRecord

H = 3600.0
T0 = 1_700_000_000.0 - (1_700_000_000.0 % H)  # an hour boundary, long past


def event(user, item, kind, ts, **extra):
    return EventIn(user_id=user, item_id=item, type=kind, timestamp=ts, **extra).to_event()


@pytest.fixture
def logged(engine):
    engine.put_items([ItemRecord(item_id="a", title="A " * 40, category="c", price=3.0, created_ts=T0 + 10),
                      ItemRecord(item_id="b", title="B", category="d", price=1.0, created_ts=T0 + H + 5),
                      ItemRecord(item_id="z", title="Zero", category="d", price=9.0, created_ts=T0 - 10 * H)])
    engine.feedback.add_impression("r1", "u1", None, "als", None, None, ["a", "b"], T0 + 20)
    engine.feedback.add_impression("r2", "u2", None, "als", None, None, ["a"], T0 + 30)
    engine.feedback.add_impression("r3", "u2", None, "trending", None, None, ["b"], T0 + H + 30)
    engine.ingest([
        event("u1", "a", "view", T0 + 100),
        event("u1", "a", "click", T0 + 200, recommendation_id="r1"),
        event("u1", "a", "purchase", T0 + 300, recommendation_id="r1"),
        event("u2", "b", "view", T0 + 400),
        event("u2", "b", "view", T0 + H + 100),
        event("u3", "ghost", "view", T0 + 2 * H + 1),  # an item only seen in events (not catalogued)
    ])
    return engine


def test_activity_per_hour_counts_events_users_items_and_engagement(logged):
    history = logged.history.activity(T0, T0 + 3 * H)
    first, second, third = history["series"]
    assert [p["t"] for p in history["series"]] == [T0, T0 + H, T0 + 2 * H]
    assert first["by_type"] == {"view": 2, "click": 1, "purchase": 1} and first["events"] == 4
    assert first["active_users"] == 2 and first["new_items"] == 1  # a (created_ts)
    assert first["strategies"] == {"als": {"impressions": 2, "clicks": 1, "conversions": 1, "ctr": 0.5, "conversion_rate": 0.5}}
    assert second["by_type"] == {"view": 1} and second["active_users"] == 1 and second["new_items"] == 1
    assert second["strategies"]["trending"]["impressions"] == 1 and second["strategies"]["trending"]["ctr"] == 0.0
    assert third["events"] == 1 and third["strategies"] == {} and third["new_items"] == 1  # ghost, first seen then
    assert history["types"] == ["click", "purchase", "view"] and history["strategies"] == ["als", "trending"]
    daily = logged.history.activity(T0, T0 + 3 * H, "day")
    assert sum(p["events"] for p in daily["series"]) == 6 and logged.history.newest_ts() == T0 + 2 * H + 1


def test_lists_page_and_sort(logged):
    users = logged.history.users("events", True, 0, 2)
    assert users["total"] == 3 and [r["user_id"] for r in users["rows"]] == ["u1", "u2"]
    assert users["rows"][0] == {"user_id": "u1", "events": 3, "first_seen": T0 + 100, "last_seen": T0 + 300}
    assert [r["user_id"] for r in logged.history.users("last_seen", True, 0, 10)["rows"]] == ["u3", "u2", "u1"]
    assert [r["user_id"] for r in logged.history.users("user_id", False, 2, 10)["rows"]] == ["u3"]
    items = logged.history.items("events", True, 0, 10)
    assert items["total"] == 4 and [r["item_id"] for r in items["rows"]] == ["a", "b", "ghost", "z"]
    ghost = items["rows"][2]
    assert ghost["catalogued"] is False and ghost["title"] is None and ghost["events"] == 1
    assert [r["item_id"] for r in logged.history.items("price", False, 0, 10)["rows"]] == ["b", "a", "z", "ghost"]
    assert logged.history.items("title", True, 3, 10)["rows"][0]["item_id"] == "ghost"  # no title sorts last


def test_item_activity_and_recent_interactors(logged):
    activity = logged.history.item_activity("a", "hour", recent=2)
    assert activity["series"] == [{"t": T0, "events": 3, "by_type": {"view": 1, "click": 1, "purchase": 1}}]
    assert [(r["user_id"], r["type"]) for r in activity["recent"]] == [("u1", "purchase"), ("u1", "click")]
    assert logged.history.item_activity("z")["series"] == []
    logged.ingest([event("u4", "z", "view", T0 - 3 * H), event("u4", "z", "view", T0)])
    gappy = logged.history.item_activity("z", "hour")  # hours without events between are there, as zeros
    assert [(p["t"], p["events"]) for p in gappy["series"]] == [(T0 - 3 * H, 1), (T0 - 2 * H, 0), (T0 - H, 0), (T0, 1)]


def test_a_deleted_user_leaves_the_history(logged):
    logged.delete_user("u1")
    first = logged.history.activity(T0, T0 + H)["series"][0]
    assert first["by_type"] == {"view": 1} and first["active_users"] == 1
    assert "u1" not in [r["user_id"] for r in logged.history.users()["rows"]]
