"""Fixtures over the two planted groups of `planted_groups` (users "a*"/"b*" touch only their
group's items), and an engine over the shop on either state (`backend`)."""

from __future__ import annotations

import pytest

from planted_groups import GROUP_SIZE, two_group_frame
from pulserec.config import DEFAULT_EVENT_WEIGHTS, Settings
from pulserec.engine import Engine
from pulserec.ingest.synthetic import as_events
from pulserec.models.interactions import Interactions
from pulserec.online.catalog import Catalog
from pulserec.records import ItemRecord


@pytest.fixture
def groups() -> Interactions:
    return Interactions.from_frame(two_group_frame(), DEFAULT_EVENT_WEIGHTS)


@pytest.fixture
def group_catalog() -> Catalog:
    """Metadata for every item, plus "a_new": an alpha item nobody has touched yet."""
    catalog = Catalog()
    for group, word in (("a", "alpha"), ("b", "beta")):
        for i in range(GROUP_SIZE):
            catalog.upsert(ItemRecord(f"{group}{i}", title=f"{word} story {group}{i}", category=word, tags=(word,)))
    catalog.upsert(ItemRecord("a_new", title="alpha story new", category="alpha", tags=("alpha",)))
    return catalog


@pytest.fixture
def shop_engine(shop, backend, tmp_path):
    """An engine on the `backend` state holding the shop's items and its first 1,500 events."""
    engine = Engine(Settings.load(tmp_path, **backend))
    engine.put_items(shop.items)
    engine.ingest(as_events(shop.events.iloc[:1500]))
    yield engine
    engine.close()
