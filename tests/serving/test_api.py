"""The HTTP API on a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import time

import httpx
import pytest

from pulserec.client import Client, PulserecError
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.server import BackgroundServer

NOW = time.time() - 3600


@pytest.fixture
def settings(tmp_path, backend) -> Settings:
    return Settings.load(tmp_path / "data", **backend)


def seed(client: Client) -> None:
    items = [{"item_id": f"shoe-{i}", "title": f"Shoe {i}", "category": "shoes", "tags": ["run"], "price": 50.0 + i} for i in range(5)]
    items += [{"item_id": f"book-{i}", "title": f"Book {i}", "category": "books", "tags": ["read"], "price": 10.0 + i} for i in range(5)]
    client.put_items(items)
    events = []
    for u in range(8):  # shoe people view shoes together, book people books
        kind = "shoe" if u % 2 else "book"
        for i in range(5):
            events.append({"user_id": f"{kind}-fan-{u}", "item_id": f"{kind}-{i}", "type": "view", "timestamp": NOW + u * 100 + i})
    client.send_events(events)


def test_event_changes_the_next_recommendation(client):
    seed(client)
    before = client.recommend("newbie", n=5)
    assert before["cold_start"] is True
    assert all("trending" in r["reason"] for r in before["items"])
    client.send_event(user_id="newbie", item_id="shoe-0", type="view", timestamp=NOW + 5000)
    after = client.recommend("newbie", n=5)
    assert after["cold_start"] is False
    top = after["items"][0]
    assert top["item_id"].startswith("shoe-") and top["reason"] == "because you viewed Shoe 0"
    assert "shoe-0" not in [r["item_id"] for r in after["items"]]  # exclude_seen by default
    assert [r["item_id"] for r in after["items"]] != [r["item_id"] for r in before["items"]]


def test_three_events_make_a_new_user_personal_and_profile_follows(client):
    seed(client)
    for i in range(3):
        client.send_event(user_id="alice", item_id=f"book-{i}", type="purchase" if i == 2 else "view",
                          timestamp=NOW + 6000 + i, context={"device": "mobile", "location": "Lyon"})
    recs = client.recommend("alice", n=2)["items"]
    assert {r["item_id"] for r in recs} <= {"book-3", "book-4"}
    profile = client.profile("alice")
    assert profile["counts_by_type"] == {"view": 2, "purchase": 1}
    assert profile["interests"]["categories"][0]["name"] == "books"
    assert profile["favourite_device"] == "mobile" and profile["favourite_location"] == "Lyon"
    assert "buyer" in profile["segments"]
    assert [r["item_id"] for r in profile["recent_items"]] == ["book-2", "book-1", "book-0"]
    assert profile["session"]["events"] == 3


def test_filters_category_price_and_exclusions(client):
    seed(client)
    client.send_event(user_id="bob", item_id="shoe-0", type="view", timestamp=NOW + 7000)
    books = client.recommend("bob", n=10, category="books")["items"]
    assert books and all(r["category"] == "books" for r in books)
    cheap = client.recommend("bob", n=10, max_price=52)["items"]
    assert cheap and all(client.item(r["item_id"])["price"] <= 52 for r in cheap)
    excluded = client.recommend("bob", n=10, exclude=["shoe-1", "shoe-2"])["items"]
    assert not {"shoe-1", "shoe-2"} & {r["item_id"] for r in excluded}
    assert "shoe-0" not in {r["item_id"] for r in client.recommend("bob", n=10)["items"]}
    assert "shoe-0" in {r["item_id"] for r in client.recommend("bob", n=10, exclude_seen=False)["items"]}
    client.put_item("shoe-1", title="Shoe 1", category="shoes", active=False)
    assert "shoe-1" not in {r["item_id"] for r in client.recommend("bob", n=10)["items"]}


def test_similar_items_and_unknown_ids(client):
    seed(client)
    similar = client.similar("shoe-0", n=3)["items"]
    assert len(similar) == 3 and all(r["item_id"].startswith("shoe-") for r in similar)
    assert similar[0]["reason"] == "similar to Shoe 0"
    with pytest.raises(PulserecError) as err:
        client.similar("no-such-item")
    assert err.value.status == 404
    with pytest.raises(PulserecError) as err:
        client.profile("no-such-user")
    assert err.value.status == 404
    with pytest.raises(PulserecError) as err:
        client.recommend("x", strategy="nope")
    assert err.value.status == 422 and "unknown strategy" in err.value.detail


def test_duplicate_event_ids_are_applied_once(client):
    seed(client)
    event = {"event_id": "dup-1", "user_id": "carol", "item_id": "book-1", "type": "purchase", "timestamp": NOW + 8000}
    first = client.send_events([event, event])
    second = client.send_event(**event)
    assert (first["accepted"], first["duplicates"]) == (1, 1)
    assert (second["accepted"], second["duplicates"]) == (0, 1)
    assert client.profile("carol")["counts_by_type"] == {"purchase": 1}
    assert client.item("book-1")["events"] == 5  # four seed views + one purchase


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b'{"user_id": "u", "item_id": "i", "type": "view", "timestamp": "yesterday"}', 422, "timestamp"),
        (b'{"user_id": "u", "item_id": "i", "type": "teleport"}', 422, "unknown event type"),
        (b'{"user_id": "u", "item_id": "i", "type": "view", "timestamp": -5}', 422, "timestamp"),
        (b'{"user_id": "u", "item_id": "i", "type": "view", "timestamp": 99999999999}', 422, "future"),
        (b'{"item_id": "i", "type": "view"}', 422, "user_id or a session_id"),
        (b'{"user_id": "u", "type": "view"}', 422, "item_id is required"),
        (b'{"user_id": "u", "item_id": "i", "type": "view", "colour": "red"}', 422, "colour"),
        (b'{"user_id": 5, "item_id": "i", "type": "view"}', 422, "user_id"),
        (b'[{"user_id": "u", "item_id": "i", "type": "view"}, {"user_id": "u", "item_id": "i", "type": "view", "value": "x"}]',
         422, "[1].value"),
        (b'{"events": []}', 422, "empty batch"),
        (b'"just a string"', 422, "body"),
    ],
)
def test_bad_input_gets_a_clear_4xx_and_stores_nothing(refusing_server, body, status, needle):
    server, engine = refusing_server
    before = engine.store.event_count()
    response = httpx.post(f"{server.url}/events", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]
    assert engine.store.event_count() == before


def test_oversize_batches_and_bodies_are_refused(tmp_path, backend):
    engine = Engine(Settings.load(tmp_path, max_batch=10, max_body_bytes=4096, **backend))
    with BackgroundServer(engine) as server:
        batch = [{"user_id": "u", "item_id": "i", "type": "view"}] * 11
        assert httpx.post(f"{server.url}/events", json=batch).status_code == 413
        huge = {"user_id": "u", "item_id": "i", "type": "view", "query": "x" * 10_000}
        response = httpx.post(f"{server.url}/events", json=huge)
        assert response.status_code == 413 and "larger than" in response.json()["detail"]
        long_id = httpx.get(f"{server.url}/users/{'u' * 129}/recommendations")
        assert long_id.status_code == 422
        assert httpx.get(f"{server.url}/users/u/recommendations", params={"n": 0}).status_code == 422
        assert httpx.get(f"{server.url}/users/u/recommendations", params={"n": 10**6}).status_code == 422
    assert engine.store.event_count() == 0
    engine.close()


def test_accepted_events_survive_bad_ones(client, engine):
    client.send_event(event_id="good", user_id="u", item_id="i", type="view")
    with pytest.raises(PulserecError):
        client.send_events([{"event_id": "g2", "user_id": "u", "item_id": "i", "type": "view"},
                            {"user_id": "u", "item_id": "i", "type": "bogus"}])
    assert engine.store.event_count() == 1
    assert client.profile("u")["event_count"] == 1


def test_delete_user_removes_events_profile_and_influence(client, engine):
    seed(client)
    # "spoiler" alone links shoe-0 with book-4; forgetting them must remove that link.
    client.send_events([{"user_id": "spoiler", "item_id": "shoe-0", "type": "purchase", "timestamp": NOW + 9000},
                        {"user_id": "spoiler", "item_id": "book-4", "type": "purchase", "timestamp": NOW + 9001}])
    assert "book-4" in [r["item_id"] for r in client.similar("shoe-0", n=10)["items"]]
    result = client.delete_user("spoiler")
    assert result["deleted_events"] == 2
    assert "book-4" not in [r["item_id"] for r in client.similar("shoe-0", n=10)["items"]]
    with pytest.raises(PulserecError):
        client.profile("spoiler")
    assert engine.store.user_events("spoiler").empty
    assert client.item("book-4")["events"] == 4  # the four book fans remain


def test_data_and_answers_survive_a_restart(tmp_path, backend):
    settings = Settings.load(tmp_path, **backend)
    engine = Engine(settings)
    with BackgroundServer(engine) as server, Client(server.url) as client:
        seed(client)
        client.send_event(user_id="dave", item_id="shoe-2", type="add_to_cart", timestamp=NOW + 9500)
        before = client.recommend("dave", n=5)["items"]
        profile = client.profile("dave")
    engine.close()
    engine = Engine(settings)
    with BackgroundServer(engine) as server, Client(server.url) as client:
        assert client.recommend("dave", n=5)["items"] == before
        again = client.profile("dave")
        assert again["counts_by_type"] == profile["counts_by_type"]
        assert client.stats()["events_stored"] == 41
    engine.close()


def test_anonymous_session_recommendations(client):
    seed(client)
    cold = client.recommend_session("s-1", n=3)
    assert cold["cold_start"]
    client.send_event(session_id="s-1", item_id="book-0", type="view", timestamp=NOW + 9900)
    warm = client.recommend_session("s-1", n=3)
    assert not warm["cold_start"] and all(r["item_id"].startswith("book-") for r in warm["items"])


def test_openapi_documents_every_route(server):
    spec = httpx.get(f"{server.url}/openapi.json").json()
    for path in ("/events", "/items/{item_id}", "/users/{user_id}/recommendations", "/items/{item_id}/similar",
                 "/users/{user_id}/profile", "/sessions/{session_id}/recommendations"):
        assert path in spec["paths"]


def test_a_sessions_recommendations_change_after_each_event(client):
    seed(client)
    lists = []
    for k, item in enumerate(["shoe-0", "book-1", "shoe-3"]):
        client.send_event(session_id="s-live", item_id=item, type="view", timestamp=NOW + 9950 + k)
        lists.append([r["item_id"] for r in client.recommend_session("s-live", n=4)["items"]])
    assert lists[0] != lists[1] != lists[2]
    assert lists[1][0].startswith("book-") and lists[2][0].startswith("shoe-")  # the latest event leads
