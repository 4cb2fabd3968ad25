"""Named and inline filter expressions over real HTTP (a real uvicorn): every ranking route,
422s that name the field, the position and what was expected, persistence across a restart."""

from __future__ import annotations

import httpx

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.server import BackgroundServer

ITEMS = [
    {"item_id": "s1", "title": "Runner", "category": "shoes", "price": 80, "attrs": {"brand": "zest"}},
    {"item_id": "s2", "title": "Boot", "category": "shoes", "price": 150, "attrs": {"brand": "acme"}},
    {"item_id": "b1", "title": "Tote", "category": "bags", "price": 40, "attrs": {"brand": "acme"}},
    {"item_id": "b2", "title": "Satchel", "category": "bags", "price": 95},
]


def _seed(client) -> None:
    client.put_items(ITEMS)
    events = [{"user_id": f"u{k}", "item_id": i["item_id"], "type": "view"} for k in range(4) for i in ITEMS]
    client.send_events(events + [{"user_id": "me", "item_id": "s1", "type": "view"}])


def _ids(response: httpx.Response) -> set[str]:
    assert response.status_code == 200, response.text
    return {r["item_id"] for r in response.json()["items"]}


def test_named_and_inline_filters_on_every_ranking_route(client, server):
    _seed(client)
    url = server.url
    put = httpx.put(f"{url}/filters/no-acme", json={"expression": 'attrs.brand != "acme" and price < 100'})
    assert put.status_code == 200 and put.json()["created"] is True
    assert httpx.put(f"{url}/filters/no-acme", json={"expression": 'attrs.brand != "acme"'}).json()["created"] is False
    assert httpx.get(f"{url}/filters/no-acme").json()["expression"] == 'attrs.brand != "acme"'
    assert [f["name"] for f in httpx.get(f"{url}/filters").json()["filters"]] == ["no-acme"]
    routes = [f"{url}/users/u0/recommendations", f"{url}/sessions/fresh/recommendations", f"{url}/items/s1/similar"]
    searched = httpx.get(f"{url}/search", params={"q": "boot runner tote satchel", "filter": "no-acme"})
    assert _ids(searched) and _ids(searched) <= {"s1", "b2"}
    assert _ids(httpx.get(f"{url}/search", params={"q": "tote satchel", "filter_expression": "price > 50"})) == {"b2"}
    assert httpx.get(f"{url}/search", params={"q": "tote", "filter_expression": "price >"}).status_code == 422
    for route in routes:
        assert _ids(httpx.get(route, params={"filter": "no-acme", "exclude_seen": False})) <= {"s1", "b2"}, route
        assert _ids(httpx.get(route, params={"filter_expression": 'category == "bags"', "exclude_seen": False})) <= {"b1", "b2"}
        both = {"filter": "no-acme", "filter_expression": 'category == "bags"', "exclude_seen": False}
        assert _ids(httpx.get(route, params=both)) == {"b2"}, route
        combined = {"filter_expression": "price < 100", "category": "shoes", "exclude_seen": False}
        assert _ids(httpx.get(route, params=combined)) <= {"s1"}, route
    assert "s1" not in _ids(httpx.get(f"{url}/users/me/recommendations", params={"filter_expression": "not seen"}))
    assert _ids(httpx.get(f"{url}/users/me/recommendations", params={"filter_expression": "seen", "exclude_seen": False})) == {"s1"}
    assert httpx.delete(f"{url}/filters/no-acme").json() == {"name": "no-acme", "deleted": True}
    assert httpx.delete(f"{url}/filters/no-acme").status_code == 404
    assert httpx.get(f"{url}/filters/no-acme").status_code == 404


def test_filter_errors_are_422_naming_field_position_and_expectation(client, server):
    _seed(client)
    url = server.url
    bad = httpx.get(f"{url}/users/u0/recommendations", params={"filter_expression": "price < 100 and"})
    assert bad.status_code == 422
    error = bad.json()["errors"][0]
    assert error["field"] == "filter_expression" and error["position"] == 16 and "a field name" in error["expected"]
    assert "position 16" in bad.json()["detail"]
    typed = httpx.get(f"{url}/items/s1/similar", params={"filter_expression": 'price > "x"'})
    assert typed.status_code == 422 and typed.json()["errors"][0]["position"] == 7
    unknown = httpx.get(f"{url}/users/u0/recommendations", params={"filter": "nope"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "filter"
    stored = httpx.put(f"{url}/filters/broken", json={"expression": "category in ("})
    assert stored.status_code == 422 and stored.json()["errors"][0]["field"] == "expression"
    assert httpx.get(f"{url}/filters/broken").status_code == 404  # nothing stored
    for params in ({"filter": "bad name"}, {"filter": "x" * 65}, {"filter_expression": ""},
                   {"filter_expression": "x" * 9000}):
        response = httpx.get(f"{url}/users/u0/recommendations", params=params)
        assert response.status_code == 422 and list(params)[0] in response.text, params
    for body in ({"expression": 3}, {}, {"expression": "true", "more": 1}, {"expression": "(" * 30 + "true" + ")" * 30}):
        assert httpx.put(f"{url}/filters/x", json=body).status_code == 422, body
    assert httpx.put(f"{url}/filters/{'x' * 65}", json={"expression": "true"}).status_code == 422


def test_user_attributes_in_filters_are_the_requesting_users(client, server):
    """`user.attrs.NAME`: the asker's declared attributes (PUT /users/{id}), read per request and
    compared against every item at once; sessions and users without the attribute match nothing."""
    _seed(client)
    url = server.url
    client.put_items([{"item_id": "s1", "title": "Runner", "category": "shoes", "price": 80, "attrs": {"brand": "zest", "min_age": 18}},
                      {"item_id": "b1", "title": "Tote", "category": "bags", "price": 40, "attrs": {"brand": "acme", "min_age": 0}}])
    client.put_user("u0", {"age": 16, "preferred": "bags", "brand": "acme"})
    client.put_user("u1", {"age": 30, "preferred": "shoes"})
    every = {"exclude_seen": False, "n": 10}

    def ids(user: str, expression: str) -> set[str]:
        return _ids(httpx.get(f"{url}/users/{user}/recommendations", params={**every, "filter_expression": expression}))

    assert ids("u0", "attrs.min_age <= user.attrs.age") == {"b1"}
    assert ids("u1", "attrs.min_age <= user.attrs.age") == {"s1", "b1"}
    assert ids("u0", "category in user.attrs.preferred") == {"b1", "b2"}  # an attribute is one value: a list of one
    assert ids("u1", "category in user.attrs.preferred") == {"s1", "s2"}
    assert ids("u0", "category not in user.attrs.preferred") == {"s1", "s2"}
    assert ids("u0", "attrs.brand == user.attrs.brand") == {"b1", "s2"}
    assert ids("u1", "attrs.brand == user.attrs.brand") == set()  # no brand declared: compares false
    assert ids("u1", "user.attrs.age >= 18 and price > 100") == {"s2"}
    assert ids("u0", "user.attrs.age >= 18 or category == \"bags\"") == {"b1", "b2"}
    assert ids("u0", "attrs.min_age <= user.attrs.brand") == set()  # text is not a number
    assert ids("u1", "tags contains user.attrs.preferred or attrs.brand == \"zest\"") == {"s1"}
    session = httpx.get(f"{url}/sessions/s-new/recommendations", params={**every, "filter_expression": "category in user.attrs.preferred"})
    assert _ids(session) == set()
    assert httpx.put(f"{url}/filters/for-me", json={"expression": "category in user.attrs.preferred"}).status_code == 200
    assert _ids(httpx.get(f"{url}/users/u0/recommendations", params={**every, "filter": "for-me"})) == {"b1", "b2"}
    assert _ids(httpx.get(f"{url}/search", params={"q": "tote runner boot satchel", "user_id": "u1", "filter": "for-me"})) == {"s1", "s2"}
    for expression, position, needle in (("category in user.attrs", 13, "unknown field 'user.attrs'"),
                                         ("category in attrs.brand", 13, "in takes a list"),
                                         ("user.attrs.age >", 17, "ends too early"),
                                         ("tags contains user.name", 15, "unknown field 'user.name'")):
        bad = httpx.get(f"{url}/users/u0/recommendations", params={"filter_expression": expression})
        assert bad.status_code == 422, expression
        error = bad.json()["errors"][0]
        assert error["field"] == "filter_expression" and error["position"] == position and needle in error["message"], error


def test_named_filters_survive_a_restart(tmp_path):
    settings = Settings.load(tmp_path / "data")
    engine = Engine(settings)
    with BackgroundServer(engine) as server:
        assert httpx.put(f"{server.url}/filters/cheap", json={"expression": "price < 50"}).status_code == 200
    engine.close()
    engine = Engine(settings)
    with BackgroundServer(engine) as server:
        assert httpx.get(f"{server.url}/filters/cheap").json()["expression"] == "price < 50"
        httpx.put(f"{server.url}/items/a", json={"price": 10})
        httpx.put(f"{server.url}/items/b", json={"price": 90})
        httpx.post(f"{server.url}/events", json={"user_id": "u", "item_id": "a", "type": "view"})
        httpx.post(f"{server.url}/events", json={"user_id": "u", "item_id": "b", "type": "view"})
        assert _ids(httpx.get(f"{server.url}/sessions/s/recommendations", params={"filter": "cheap"})) == {"a"}
    engine.close()


def test_the_python_client_manages_and_uses_filters(client):
    import pytest

    from pulserec.client import PulserecError

    _seed(client)
    assert client.put_filter("bags", 'category == "bags"')["created"] is True
    assert [f["name"] for f in client.filters()] == ["bags"] and client.filter("bags")["expression"] == 'category == "bags"'
    assert {r.item_id for r in client.recommend("u0", filter="bags", exclude_seen=False).items} == {"b1", "b2"}
    assert {r.item_id for r in client.similar("s1", filter_expression="price < 90").items} <= {"s1", "b1"}
    found = client.search_items("tote satchel runner", user_id="u0", filter="bags").items
    assert found and {r.item_id for r in found} <= {"b1", "b2"}
    assert [r.item_id for r in client.search_items("tote satchel", filter_expression="price > 50").items] == ["b2"]
    with pytest.raises(PulserecError) as caught:
        client.put_filter("bad", "price <")
    assert caught.value.status == 422 and "position 8" in caught.value.detail
    assert client.delete_filter("bags")["deleted"] is True and client.filters() == []


def test_slate_rules_over_http_cap_categories_and_validate(client, server):
    _seed(client)
    url = server.url
    capped = httpx.get(f"{url}/users/u0/recommendations", params={"max_per_category": 1, "exclude_seen": False, "n": 4})
    assert capped.status_code == 200
    categories = [r["category"] for r in capped.json()["items"]]
    assert sorted(categories) == ["bags", "shoes"]  # one of each, though four were asked for
    similar = httpx.get(f"{url}/items/s1/similar", params={"max_per_category": 1, "diversity": 0.5})
    assert similar.status_code == 200 and len({r["category"] for r in similar.json()["items"]}) == len(similar.json()["items"])
    for params in ({"diversity": 1.5}, {"diversity": -0.1}, {"diversity": "lots"}, {"max_per_category": 0},
                   {"max_per_category": 100_000}):
        response = httpx.get(f"{url}/users/u0/recommendations", params=params)
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == next(iter(params)), params


def test_openapi_documents_the_controls_with_examples(server):
    doc = httpx.get(f"{server.url}/openapi.json").json()
    paths = doc["paths"]
    for path in ("/filters", "/filters/{name}", "/promotions", "/promotions/{name}"):
        for method, operation in paths[path].items():
            content = operation["responses"]["200"]["content"]["application/json"]
            assert "example" in content, (method, path)
    assert {"filter", "filter_expression"} <= {p["name"] for p in paths["/search"]["get"]["parameters"]}
    for route in ("/users/{user_id}/recommendations", "/sessions/{session_id}/recommendations", "/items/{item_id}/similar"):
        params = {p["name"]: p for p in paths[route]["get"]["parameters"]}
        for name in ("filter", "filter_expression", "max_per_category", "diversity", "promotions", "exploration"):
            assert name in params and (params[name].get("examples") or params[name]["schema"].get("examples")), (route, name)
    body = paths["/promotions/{name}"]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert "PromotionIn" in body.get("$ref", "")
    assert doc["components"]["schemas"]["PromotionIn"]["examples"][0]["share"] == 0.2
