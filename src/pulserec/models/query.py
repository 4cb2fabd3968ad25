"""Turn a user's live history into the :class:`Query` that models score."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from pulserec.models.base import Query
from pulserec.online.history import Touch


def build_query(
    owner: int | None,
    recent: Iterable[Touch],
    *,
    max_items: int,
    position_decay: float,
    now: float,
    n_items: int,
    context: dict[str, Any] | None = None,
) -> Query:
    """Most recent distinct items first; weight = event weight x exp(-position / position_decay).

    An item touched several times keeps its most recent position and its strongest event."""
    items: list[int] = []
    weights: list[float] = []
    types: list[str] = []
    stamps: list[float] = []
    slot: dict[int, int] = {}
    for touch in reversed(list(recent)):
        pos = slot.get(touch.item)
        if pos is not None:
            if touch.weight > weights[pos] / math.exp(-pos / position_decay):
                weights[pos] = touch.weight * math.exp(-pos / position_decay)
                types[pos] = touch.type
            continue
        if len(items) >= max_items:
            continue
        pos = len(items)
        slot[touch.item] = pos
        items.append(touch.item)
        weights.append(touch.weight * math.exp(-pos / position_decay))
        types.append(touch.type)
        stamps.append(touch.ts)
    return Query(
        user=owner,
        items=np.asarray(items, dtype=np.int64),
        weights=np.asarray(weights, dtype=np.float64),
        types=tuple(types),
        timestamps=np.asarray(stamps, dtype=np.float64),
        context=dict(context or {}),
        now=now,
        n_items=n_items,
    )
