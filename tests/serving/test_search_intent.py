"""Search intent (issue 14.3) over real HTTP: a search shapes the owner's next recommendations
(BM25 over item text and what others chose after similar searches), fading as the session goes
on; GET /search ranks matching items for the person asking."""

from __future__ import annotations

import time

import pytest

from pulserec.client import PulserecError
from pulserec.ingest.synthetic import as_events
from pulserec.models.search_intent import search_strength

NOW = time.time() - 600


@pytest.fixture
def shop_client(engine, shop, client):
    """The synthetic shop (eight categories; shoes are running/trail/... shoes, sneakers, boots)."""
    engine.put_items(list(shop.items))
    engine.ingest(as_events(shop.events.iloc[:1500].assign(ts=NOW - 5000 + shop.events["ts"].rank().iloc[:1500])))
    return client


def categories(answer) -> list[str]:
    return [r["category"] for r in answer["items"]]


def test_a_new_session_that_searches_running_shoe_is_offered_shoes(shop_client):
    client = shop_client
    before = client.recommend_session("fresh", n=5)
    assert set(categories(before)) != {"shoes"}
    client.send_event(session_id="fresh", type="search", query="running shoe", timestamp=NOW)
    after = client.recommend_session("fresh", n=5)
    assert categories(after) == ["shoes"] * 5 and after["cold_start"] is False
    assert all(r["reason"] == 'matches your search "running shoe"' for r in after["items"])
    assert "running" in after["items"][0]["title"].lower()  # the best match (both words) first


def test_the_intent_fades_as_the_session_moves_on(shop_client, shop):
    client = shop_client
    books = [i.item_id for i in shop.items if i.category == "books"]
    client.send_event(session_id="s2", type="search", query="running shoe", timestamp=NOW)
    for k, item in enumerate(books[:8]):  # the session goes on reading about books
        client.send_event(session_id="s2", item_id=item, type="view", timestamp=NOW + 1 + k)
    assert "shoes" not in categories(client.recommend_session("s2", n=5))
    assert search_strength(0.7, 3.0, 10, 10.0, 1800.0) < 0.1 < search_strength(0.7, 3.0, 1, 10.0, 1800.0)
    assert search_strength(0.7, 3.0, 0, 1801.0, 1800.0) == 0.0  # a search from another session


def test_what_others_chose_after_a_similar_search_is_offered(shop_client, shop, engine):
    client = shop_client
    chosen = next(i for i in shop.items if i.category == "garden")  # nothing in it says "festival"
    for k in range(3):
        client.send_event(session_id=f"fan-{k}", type="search", query="festival outfit", timestamp=NOW + k)
        client.send_event(session_id=f"fan-{k}", item_id=chosen.item_id, type="click", timestamp=NOW + k + 0.5)
    client.send_event(session_id="newcomer", type="search", query="Festival!", timestamp=NOW + 10)
    top = client.recommend_session("newcomer", n=3)["items"][0]
    assert top["item_id"] == chosen.item_id and top["reason"] == 'chosen by others who searched "Festival!"'
    # learned from the log: forgetting the people who taught it forgets it
    for k in range(3):
        client.send_event(user_id=f"fan-{k}-user", session_id=f"fan-{k}", type="view", item_id=chosen.item_id,
                          timestamp=NOW + 20 + k)  # login: the sessions become users
        client.delete_user(f"fan-{k}-user")
    assert engine.searches.clicks_after("festival", ["click"], 1800.0) == {}


def test_search_ranks_matches_by_what_the_person_likes(shop_client, shop):
    client = shop_client
    shoes = [i for i in shop.items if i.category == "shoes" and "shoe" in (i.title or "").lower()]
    assert len(shoes) >= 2
    plain = client.search_items("shoe", n=20)
    assert [r["category"] for r in plain["items"][:10]] == ["shoes"] * 10  # word matches first
    # further down: what some people chose after searching "... shoes" (the shop's searches are noisy)
    assert all(r["category"] == "shoes" or r["reason"] == 'chosen by others who searched "shoe"' for r in plain["items"])
    liked = [r["item_id"] for r in plain["items"] if r["category"] == "shoes"][-1]  # a weak match, until taste lifts it
    neighbours = [r["item_id"] for r in client.similar(liked, n=50)["items"]]
    for k, item in enumerate([liked, *neighbours[:3]]):
        client.send_event(user_id="picky", item_id=item, type="purchase", timestamp=NOW + 100 + k)
    personal = client.search_items("shoe", user_id="picky", n=20)
    ranks = [r["item_id"] for r in personal["items"]]
    assert ranks.index(liked) < [r["item_id"] for r in plain["items"]].index(liked)
    assert personal["user_id"] == "picky" and personal["query"] == "shoe"


@pytest.mark.parametrize("params, field", [({"q": ""}, "q"), ({"q": "shoe", "n": 0}, "n"),
                                           ({"q": "x" * 600}, "q"), ({"q": "shoe", "user_id": "a\x01"}, "user_id")])
def test_bad_search_requests_are_422_naming_the_field(shop_client, params, field):
    with pytest.raises(PulserecError) as err:
        shop_client.search_items(**params)
    assert err.value.status == 422 and field in str(err.value.detail)


def test_a_search_without_a_match_is_an_empty_list(shop_client):
    assert shop_client.search_items("qwertyuiop")["items"] == []
