"""Cutting dense scores to the best n: `top_n`, and the dashboard's trending list built on it."""

from __future__ import annotations

from typing import Any

import numpy as np

from pulserec.online.base import State
from pulserec.profiles.profile import significant


def trending_list(state: State, n: int = 10, at: float | None = None) -> list[dict[str, Any]]:
    """The top-n servable items by trending score read at time `at` (the engine's clock), with
    titles and all-time event counts (the dashboard's list; read inside one read scope:
    `Engine.read`). Scores to four significant digits: a small one is not shown as 0.0."""
    catalog = state.catalog
    size = len(catalog)
    if size == 0:
        return []
    scores = state.popularity.trending_scores(size, at)
    events = state.popularity.events
    out = []
    servable = catalog.servable_mask(state.settings.serve_unknown_items)
    for idx in top_n(scores, n, servable & (scores > 0)).tolist():
        record = catalog.record(idx)
        out.append({"item_id": record.item_id, "title": record.title, "category": record.category,
                    "score": significant(float(scores[idx])), "events": int(events[idx]) if idx < len(events) else 0})
    return out


def top_n(scores: np.ndarray, n: int, mask: np.ndarray) -> np.ndarray:
    """Indices of the n best-scoring items where mask is True, best first (ties: lower index).

    A selection pass first: split the scores into blocks and take each block's maximum. The
    n-th largest block maximum is a lower bound for the n-th largest score (the n best blocks
    each hold a score at least that high), so only scores at or above it can be in the top n,
    and they lie in the blocks whose maximum reaches it (a block with a NaN too: its maximum
    says nothing). That leaves a few dozen scores to sort instead of a partition of the whole
    catalogue (30 us instead of 130 us for 10 of 10k items), and the few blocks to scan instead
    of a second pass over the catalogue (~0.1 ms at 100k items)."""
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    values = np.where(mask, scores, -np.inf)
    block = min(64, len(values) // (4 * n))
    if block < 4:  # n is a large share of the catalogue: every score is its own block
        block, maxima = 1, values
    else:
        full = len(values) // block * block
        maxima = values[:full].reshape(-1, block).max(axis=1)
        if full < len(values):
            maxima = np.append(maxima, values[full:].max())
    bound = np.partition(maxima, len(maxima) - n)[len(maxima) - n] if len(maxima) > n else -np.inf
    if not bound > -np.inf:
        candidates = np.flatnonzero(mask)
    elif block == 1:
        candidates = np.flatnonzero(values >= bound)
    else:
        blocks = np.flatnonzero((maxima >= bound) | np.isnan(maxima))
        rows = (blocks[:, None] * block + np.arange(block)).ravel()
        rows = rows[rows < len(values)]
        candidates = rows[values[rows] >= bound]
    return candidates[np.lexsort((candidates, -scores[candidates]))[:n]]
