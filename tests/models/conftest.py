"""Fixtures over the two planted groups of `planted_groups` (users "a*"/"b*" touch only their
group's items)."""

from __future__ import annotations

import pytest

from planted_groups import GROUP_SIZE, two_group_frame
from pulserec.config import DEFAULT_EVENT_WEIGHTS
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
