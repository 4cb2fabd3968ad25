"""Tiny hand-built data with a known right answer: two disjoint groups of users and items.

Users "a*" only touch items "a0".."a5", users "b*" only "b0".."b5"; every user has seen four of
their group's six items. Any sensible model must recommend a user their own group's other items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pulserec.config import DEFAULT_EVENT_WEIGHTS
from pulserec.models.interactions import Interactions
from pulserec.online.catalog import Catalog
from pulserec.records import ItemRecord

GROUP_SIZE = 6


def two_group_frame(users_per_group: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    ts = 0.0
    for group in "ab":
        for u in range(users_per_group):
            for item in rng.choice(GROUP_SIZE, size=4, replace=False):
                ts += 60.0
                rows.append({"user_id": f"{group}u{u}", "item_id": f"{group}{item}", "type": "click", "ts": ts})
    return pd.DataFrame(rows)


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


def group_items(data: Interactions, group: str) -> np.ndarray:
    return np.array([data.item_ids.get(f"{group}{i}") for i in range(GROUP_SIZE)])
