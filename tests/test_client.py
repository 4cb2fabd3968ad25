"""The Python clients against a real server: typed results, dict-style access, the async client."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulserec.client import AsyncClient, Client, IngestResult, Item, Profile, PulserecError, Recommendations, SearchResults
from pulserec.client_results import Recommendation

ITEMS = [{"item_id": f"shoe-{i}", "title": f"Shoe {i}", "category": "shoes", "price": 40.0 + i} for i in range(4)]
ITEMS.append({"item_id": "odd id?#1 é", "title": "Odd one", "category": "misc"})
EVENTS = [{"user_id": f"fan-{u}", "item_id": f"shoe-{i}", "type": "view"} for u in range(3) for i in range(4)]


def test_sync_client_returns_typed_results_that_still_read_like_dicts(client):
    client.put_items(ITEMS)
    ingested = client.send_events(EVENTS)
    assert isinstance(ingested, IngestResult) and ingested.accepted == 12 and ingested["accepted"] == 12
    assert ingested == {"accepted": 12, "duplicates": 0, "event_ids": ingested.event_ids}

    client.send_event(user_id="ann", item_id="shoe-0", type="purchase", context={"device": "mobile"})
    answer = client.recommend("ann", n=3)
    assert isinstance(answer, Recommendations) and answer.user_id == "ann" and answer.strategy == "default"
    assert all(isinstance(r, Recommendation) for r in answer.items)
    assert answer.items[0].item_id == answer["items"][0]["item_id"] and answer.items[0].reason.startswith("because you")
    assert answer.item_ids == [r["item_id"] for r in answer["items"]] and "shoe-0" not in answer.item_ids
    assert "cold_start" in answer and answer.get("nope", 7) == 7 and set(answer.keys()) >= {"items", "strategy"}

    profile = client.profile("ann")
    assert isinstance(profile, Profile) and profile.counts_by_type == {"purchase": 1}
    assert profile.category_scores() == {"shoes": 8.0} and profile.favourite_device == "mobile"
    assert profile["recent_items"][0]["item_id"] == "shoe-0"

    item = client.item("odd id?#1 é")  # ids are quoted into the path
    assert isinstance(item, Item) and item.title == "Odd one" and item.events == 0
    assert client.similar("shoe-0", n=2).item_id == "shoe-0"
    with pytest.raises(ValueError):
        client.item("")


def test_async_client_covers_every_endpoint(server):
    async def scenario() -> None:
        async with AsyncClient(server.url) as api:
            assert (await api.health())["status"] == "ok"
            assert (await api.put_items(ITEMS))["upserted"] == len(ITEMS)
            assert (await api.put_item("shoe-9", title="Shoe 9", category="shoes"))["created"] is True
            ingested = await api.send_events(EVENTS)
            assert isinstance(ingested, IngestResult) and ingested.accepted == len(EVENTS)
            assert (await api.send_event(user_id="bea", item_id="shoe-1", type="view")).accepted == 1
            assert (await api.send_event(session_id="s-1", item_id="shoe-2", type="view")).accepted == 1
            assert (await api.put_user("bea", {"plan": "gold"}))["user_id"] == "bea"

            recs, session, similar = await asyncio.gather(
                api.recommend("bea", n=3, exclude=["shoe-0"]), api.recommend_session("s-1", n=2), api.similar("shoe-1", n=2))
            assert recs.user_id == "bea" and recs.items and "shoe-0" not in recs.item_ids
            assert session.session_id == "s-1" and len(session.items) == 2
            assert similar.item_id == "shoe-1" and all(r.item_id.startswith("shoe-") for r in similar.items)

            profile = await api.profile("bea")
            assert profile.attrs == {"plan": "gold"} and profile.event_count == 1
            item = await api.item("shoe-1")
            assert item.category == "shoes" and item.events == 4
            found = await api.find("shoe", limit=3, kind="items")
            assert isinstance(found, SearchResults) and len(found.items) == 3 and found.users == []
            matches = await api.search_items("shoe", n=2, user_id="bea")
            assert matches.query == "shoe" and [r.item_id.startswith("shoe-") for r in matches.items] == [True, True]

            assert (await api.stats())["events_applied"] == len(EVENTS) + 2
            assert {m["name"] for m in (await api.models())["models"]} >= {"default", "item_knn"}
            assert (await api.overview(window=10, top=3))["totals"]["items"] == len(ITEMS) + 1
            names = {f.name for f in text_string_to_metric_families(await api.metrics())}
            assert {"pulserec_http_requests", "pulserec_events_ingested"} <= names

            assert (await api.delete_user("bea"))["deleted_events"] == 1
            with pytest.raises(PulserecError) as err:
                await api.profile("bea")
            assert err.value.status == 404
            with pytest.raises(PulserecError) as err:
                await api.find("")
            assert err.value.status == 422 and "q" in err.value.detail

    asyncio.run(scenario())


def test_sync_and_async_clients_share_one_request_layer():
    from pulserec.client import _Endpoints

    endpoints = {name for name in vars(_Endpoints) if not name.startswith("_")}
    assert endpoints >= {"send_events", "recommend", "profile", "search_items", "find", "metrics", "overview"}
    for cls in (Client, AsyncClient):  # neither redefines an endpoint
        assert not endpoints & set(vars(cls)), cls
