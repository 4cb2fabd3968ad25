"""Promotions over real HTTP (a real uvicorn): share of the slate, reason, ?promotions=false,
boosts, windows, validation, and the impressions and clicks of promoted slots in GET /feedback."""

from __future__ import annotations

import time

import httpx

ITEMS = [{"item_id": f"i{k}", "title": f"Item {k}", "category": "shoes" if k < 8 else "sale", "price": 10 + k}
         for k in range(12)]


def _seed(client) -> None:
    client.put_items(ITEMS)
    events = [{"user_id": f"u{u}", "item_id": f"i{k}", "type": "view"} for u in range(6) for k in range(8)]
    events += [{"user_id": "fan", "item_id": f"i{k}", "type": "view"} for k in range(3)]
    client.send_events(events)


def test_a_share_promotion_takes_its_slots_and_is_counted(client, server):
    _seed(client)
    url = server.url
    put = httpx.put(f"{url}/promotions/sale", json={"filter": 'category == "sale"', "share": 0.2})
    assert put.status_code == 200 and put.json()["created"] is True
    answer = httpx.get(f"{url}/users/fan/recommendations", params={"n": 5}).json()
    items = answer["items"]
    promoted = [r for r in items if r.get("promotion") == "sale"]
    assert len(items) == 5 and len(promoted) == 1 and promoted[0]["reason"] == "promoted"
    assert promoted[0]["item_id"] in {"i8", "i9", "i10", "i11"} and items.index(promoted[0]) == 2  # the middle slot
    plain = httpx.get(f"{url}/users/fan/recommendations", params={"n": 5, "promotions": "false"}).json()["items"]
    assert all("promotion" not in r and r["category"] == "shoes" for r in plain)
    # shown, then the promoted slot is clicked through its recommendation id
    rec_id = answer["recommendation_id"]
    assert httpx.post(f"{url}/impressions", json={"recommendation_id": rec_id}).json()["recorded"] is True
    organic = next(r for r in items if "promotion" not in r)
    client.send_events([{"user_id": "fan", "item_id": organic["item_id"], "type": "click", "recommendation_id": rec_id}])
    report = httpx.get(f"{url}/feedback").json()["promotions"]
    assert report == [{"name": "sale", "impressions": 1, "clicks": 0, "ctr": 0.0}]  # a click elsewhere is not the slot's
    client.send_events([{"user_id": "fan", "item_id": promoted[0]["item_id"], "type": "click", "recommendation_id": rec_id}])
    assert httpx.get(f"{url}/feedback").json()["promotions"] == [{"name": "sale", "impressions": 1, "clicks": 1, "ctr": 1.0}]
    detail = httpx.get(f"{url}/promotions/sale").json()
    assert detail["running"] is True and detail["impressions"] == 1 and detail["clicks"] == 1 and detail["share"] == 0.2
    assert [p["name"] for p in httpx.get(f"{url}/promotions").json()["promotions"]] == ["sale"]
    # an impression naming only organic items records no promoted slot
    other = httpx.get(f"{url}/users/u1/recommendations", params={"n": 5, "exclude_seen": False}).json()
    shown = [r["item_id"] for r in other["items"] if "promotion" not in r]
    httpx.post(f"{url}/impressions", json={"recommendation_id": other["recommendation_id"], "items": shown})
    assert httpx.get(f"{url}/promotions/sale").json()["impressions"] == 1
    assert httpx.delete(f"{url}/promotions/sale").json()["deleted"] is True
    assert httpx.get(f"{url}/promotions/sale").status_code == 404


def test_boosts_windows_and_similar_items(client, server):
    _seed(client)
    url = server.url
    httpx.put(f"{url}/promotions/lift", json={"filter": 'item_id == "i7"', "boost": 1000})
    top = httpx.get(f"{url}/users/fan/recommendations", params={"n": 3}).json()["items"][0]
    assert top["item_id"] == "i7" and top["reason"] == "promoted" and top["promotion"] == "lift"
    httpx.delete(f"{url}/promotions/lift")
    later = time.time() + 3600
    httpx.put(f"{url}/promotions/later", json={"filter": 'category == "sale"', "share": 0.5, "starts": later})
    items = httpx.get(f"{url}/users/fan/recommendations", params={"n": 4}).json()["items"]
    assert all("promotion" not in r for r in items)
    assert httpx.get(f"{url}/promotions/later").json()["running"] is False
    httpx.put(f"{url}/promotions/later", json={"filter": 'category == "sale"', "share": 0.5, "ends": later})
    similar = httpx.get(f"{url}/items/i0/similar", params={"n": 4}).json()["items"]
    assert sum(1 for r in similar if r.get("promotion") == "later") == 2


def test_promotion_bodies_are_validated(server):
    url = server.url
    bad = [{"filter": "price <", "share": 0.2}, {"filter": "true"}, {"filter": "true", "share": 0.2, "boost": 2},
           {"filter": "true", "share": 0}, {"filter": "true", "share": 1.5}, {"filter": "true", "boost": -1},
           {"filter": "true", "share": 0.2, "starts": 200, "ends": 100}, {"filter": "true", "share": "lots"},
           {"filter": "true", "share": 0.2, "colour": "red"}, {"share": 0.2}]
    for body in bad:
        response = httpx.put(f"{url}/promotions/p", json=body)
        assert response.status_code == 422, (body, response.text)
    first = httpx.put(f"{url}/promotions/p", json=bad[0]).json()["errors"][0]
    assert first["field"] == "filter" and first["position"] == 8
    assert httpx.put(f"{url}/promotions/p%20q", json={"filter": "true", "share": 0.2}).status_code == 422
    assert httpx.get(f"{url}/promotions/p").status_code == 404
    assert httpx.get(f"{url}/users/u/recommendations", params={"promotions": "maybe"}).status_code == 422


def test_filters_and_promotions_belong_to_their_app(client, server):
    url = server.url
    assert httpx.put(f"{url}/apps/other", json={}).status_code == 201
    for prefix in ("", "/apps/other"):
        httpx.post(f"{url}{prefix}/items", json={"items": ITEMS})
        httpx.post(f"{url}{prefix}/events", json={"events": [{"user_id": "fan", "item_id": f"i{k}", "type": "view"} for k in range(3)]})
    assert httpx.put(f"{url}/apps/other/filters/only-sale", json={"expression": 'category == "sale"'}).status_code == 200
    assert httpx.put(f"{url}/apps/other/promotions/sale", json={"filter": 'category == "sale"', "share": 0.5}).status_code == 200
    assert httpx.get(f"{url}/filters/only-sale").status_code == 404 and httpx.get(f"{url}/promotions").json()["promotions"] == []
    mine = httpx.get(f"{url}/users/fan/recommendations", params={"n": 4}).json()["items"]
    assert all("promotion" not in r for r in mine)
    theirs = httpx.get(f"{url}/apps/other/users/fan/recommendations", params={"n": 4}).json()["items"]
    assert sum(1 for r in theirs if r.get("promotion") == "sale") == 2
    assert httpx.get(f"{url}/users/fan/recommendations", params={"filter": "only-sale"}).status_code == 422
    named = httpx.get(f"{url}/apps/other/users/fan/recommendations", params={"filter": "only-sale", "promotions": "false"})
    assert named.status_code == 200 and {r["category"] for r in named.json()["items"]} <= {"sale"}
