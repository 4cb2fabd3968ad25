"""Tiny hand-built data with a known right answer: two disjoint groups of users and items.

Users "a*" only touch items "a0".."a5", users "b*" only "b0".."b5"; every user has seen four of
their group's six items. Any sensible model must recommend a user their own group's other items.

A module of its own (not conftest.py) so tests can import its helpers by a unique name:
`from conftest import ...` resolves to whichever conftest module pytest loaded first, which is
another directory's when tests/models and tests/serving are collected in one run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pulserec.models.interactions import Interactions

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


def group_items(data: Interactions, group: str) -> np.ndarray:
    return np.array([data.item_ids.get(f"{group}{i}") for i in range(GROUP_SIZE)])
