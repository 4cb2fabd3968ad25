"""The filter language over a real engine's catalogue: results, errors with positions, bounds,
and the per-revision cache following catalogue changes row by row."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pulserec.config import Settings
from pulserec.events import Event
from pulserec.recommend.expression import MAX_DEPTH, MAX_LENGTH, MAX_LIST, FilterError, parse
from pulserec.recommend.filters import Filters
from pulserec.records import ItemRecord

DAY = 86400.0
NOW = time.time()


def _items() -> list[ItemRecord]:
    return [
        ItemRecord("s1", title="Red Runner", category="shoes", price=80, created_ts=NOW - 5 * DAY, tags=("summer", "sport"),
                   attrs={"brand": "zest", "vegan": True, "size": 42}),
        ItemRecord("s2", title="Acme Boot", category="shoes", price=150, created_ts=NOW - 2 * DAY, attrs={"brand": "acme", "size": 44}),
        ItemRecord("b1", title="Tote", category="bags", price=40, created_ts=NOW - 60 * DAY, tags=("summer",), attrs={"brand": "acme"}),
        ItemRecord("b2", title="Satchel", category="bags", price=99.5, created_ts=NOW - 1 * DAY, attrs={}),
        ItemRecord("h1", title="Sun hat", category="hats", price=None, created_ts=NOW - 3 * DAY, attrs={"brand": "zest", "vegan": False}),
        ItemRecord("x1", title=None, category=None, price=10, created_ts=None, active=False),
    ]


@pytest.fixture
def settings(tmp_path, backend) -> Settings:
    """Both online states: the Redis one filters on its in-process catalogue mirror."""
    return Settings.load(tmp_path / "data", **backend)


@pytest.fixture
def shop(engine):
    engine.put_items(_items())
    engine.ingest([Event("e1", user_id="u", item_id="s1", type="view", ts=NOW - 10), Event("e2", user_id="u", item_id="b2", type="view", ts=NOW - 5)])
    return engine


def passing(engine, expression: str | None = None, context=None, **fixed) -> set[str]:
    owner = engine.state.owners.get(engine.user_key("u"))
    mask = engine.service.filters.mask(engine.state, owner, Filters(expressions=(("filter_expression", expression),) if expression else (), exclude_seen=False, **fixed),
                                       now=NOW, context=context)
    return set(engine.state.catalog.item_ids.ids_of(np.flatnonzero(mask)))


@pytest.mark.parametrize("expression, expected", [
    ('category in ("shoes", "bags") and price < 100 and attrs.brand != "acme" and not seen and created_at > now - 30d', set()),
    ('category in ("shoes", "bags") and price < 100 and attrs.brand != "acme" and created_at > now - 30d', {"s1", "b2"}),
    ('price < 100', {"s1", "b1", "b2"}),  # no price: h1 left out; x1 is inactive
    ('price >= 99.5 or category == "hats"', {"s2", "b2", "h1"}),
    ('not (price >= 99.5 or category == "hats")', {"s1", "b1"}),
    ('attrs.brand == "acme"', {"s2", "b1"}),
    ('attrs.brand != "acme"', {"s1", "b2", "h1"}),  # no brand counts as != "acme"
    ('attrs.brand == null', {"b2"}),
    ('attrs.vegan', {"s1"}),
    ('attrs.vegan == false', {"h1"}),
    ('attrs.size > 43', {"s2"}),
    ('attrs.brand not in ("acme", "zest")', {"b2"}),
    ('tags contains "summer"', {"s1", "b1"}),
    ('title contains "SUN"', {"h1"}),
    ('title == "Tote"', {"b1"}),
    ('item_id in ("s2", "h1", "nope")', {"s2", "h1"}),
    ('item_id != "s2" and category == "shoes"', {"s1"}),
    ('seen', {"s1", "b2"}),
    ('created_at > now - 4d', {"s2", "b2", "h1"}),
    ('created_at + 3d > now', {"s2", "b2"}),
    ('price == null', {"h1"}),
    ('category == "nothing"', set()),
    ('true', {"s1", "s2", "b1", "b2", "h1"}),
    ('false or price < 50', {"b1"}),
    ("category == 'bags' and price < 50.0", {"b1"}),
])
def test_expressions_select_exactly_their_items(shop, expression, expected):
    assert passing(shop, expression) == expected


def test_context_values_come_from_the_request(shop):
    mobile_cheap = 'context.device != "mobile" or price < 50'
    assert passing(shop, mobile_cheap, {"device": "mobile"}) == {"b1"}
    assert passing(shop, mobile_cheap, {"device": "desktop"}) == {"s1", "s2", "b1", "b2", "h1"}
    assert passing(shop, 'context.location in ("DE", "AT") and category == "hats"', {"location": "DE"}) == {"h1"}
    assert passing(shop, 'context.location in ("DE", "AT") and category == "hats"', {}) == set()


def test_fixed_parameters_are_the_same_masks(shop):
    assert passing(shop, category="shoes", max_price=100) == {"s1"}
    assert passing(shop, min_price=50, exclude=frozenset({"s2"})) == {"s1", "b2"}
    assert passing(shop, 'attrs.brand == "acme"', category="bags") == {"b1"}
    owner = shop.state.owners.get(shop.user_key("u"))
    mask = shop.service.filters.mask(shop.state, owner, Filters(), now=NOW)
    assert set(shop.state.catalog.item_ids.ids_of(np.flatnonzero(mask))) == {"s2", "b1", "h1"}  # exclude_seen


@pytest.mark.parametrize("expression, position, expected_piece, message", [
    ("price < ", 9, "a number", "ends too early"),
    ("price <> 3", 8, "a number", "unexpected"),
    ('category in ("a" "b")', 18, "','", "unexpected"),
    ("price @ 3", 7, "'and'", "unexpected character"),
    ("(price < 3", 11, "')'", "ends too early"),
    ('price < "cheap"', 7, None, "'cheap' is not a number"),
    ("category == 3", 10, None, "category is text"),
    ("colour == 'red'", 1, None, "unknown field 'colour'"),
    ("tags == 'x'", 6, None, "tags is a list"),
    ("price", 1, None, "price is not true/false"),
    ("title contains 3", 1, None, "contains needs tags or title"),
    ("x in (price)", 7, None, "literal values only"),
    ("   ", 1, None, "empty"),
])
def test_errors_name_the_position_and_what_was_expected(shop, expression, position, expected_piece, message):
    with pytest.raises(FilterError) as caught:
        passing(shop, expression)
    error = caught.value
    assert error.field == "filter_expression" and message in error.message, error.message
    assert error.position == position, error.message
    if expected_piece:
        assert expected_piece in error.expected, error.expected


def test_bounds_on_length_depth_and_lists():
    with pytest.raises(FilterError, match=f"longer than {MAX_LENGTH}"):
        parse("price < 1 or " * (MAX_LENGTH // 12) + "true")
    with pytest.raises(FilterError, match="nest deeper"):
        parse("(" * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(FilterError, match=f"at most {MAX_LIST}"):
        parse("item_id in (" + ",".join(str(i) for i in range(MAX_LIST + 1)) + ")")
    with pytest.raises(FilterError, match="operators"):
        parse(" and ".join(["not " * (2 * MAX_DEPTH) + "seen"] * 2))
    parse("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH)  # at the bound: fine


def test_cached_masks_follow_upserts_and_new_items(shop):
    expression = 'attrs.brand == "acme" and price < 200'
    assert passing(shop, expression) == {"s2", "b1"}
    shop.put_items([ItemRecord("b1", title="Tote", category="bags", price=40, attrs={"brand": "other"})])  # one row changed
    assert passing(shop, expression) == {"s2"}
    shop.put_items([ItemRecord("n1", title="New", category="bags", price=5, attrs={"brand": "acme"})])  # a new row
    assert passing(shop, expression) == {"s2", "n1"}
    shop.ingest([Event("e3", user_id="v", item_id="unlisted", type="view", ts=NOW)])  # interned by an event, no metadata
    assert passing(shop, expression) == {"s2", "n1"}
    assert passing(shop, "attrs.brand == null") == {"b2"}  # not served: the catalogue policy
    columns = shop.service.filters.columns
    before = columns.catalog.revision
    passing(shop, expression)
    assert columns.catalog.revision == before  # reading does not move the revision


def test_the_journal_bounds_incremental_updates(shop):
    from pulserec.online.catalog import JOURNAL

    catalog = shop.state.catalog
    start = catalog.revision
    assert catalog.changed_since(start).tolist() == []
    shop.put_items([ItemRecord("s1", title="Red Runner", category="shoes", price=70)])
    assert catalog.changed_since(start).tolist() == [catalog.item_ids.get("s1")]
    shop.put_items([ItemRecord(f"bulk{i}", price=1) for i in range(JOURNAL + 1)])
    assert catalog.changed_since(start) is None  # too far behind: a cache rebuilds in full
    assert passing(shop, "price < 2") == {f"bulk{i}" for i in range(JOURNAL + 1)}
