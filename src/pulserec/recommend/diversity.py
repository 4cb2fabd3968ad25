"""Diversity of a slate: at most N items per category, and MMR re-ranking by item similarity.

MMR (Carbonell & Goldstein, 1998) picks, one at a time, the candidate maximising
`(1 - d) * relevance - d * max similarity to what is already picked`, with `d` the request's
`diversity` (0: plain ranking, 1: least similar first). Relevance is the model's score scaled
to [0, 1] over a pool of the best candidates (`POOL_PER_SLOT` per slot, at most `MAX_POOL`:
the P x P similarity is built per request). Similarity is the engine's item-item cosine over
co-occurrence (what item-kNN and GET /items/{id}/similar read), divided by the largest one in
the pool: cosines of decayed co-occurrence weights are small numbers (~1e-3 on the synthetic
shop), and on that scale no `diversity` below 1 would move an item. Items that never
co-occurred count as dissimilar. `max_per_category` caps each category (items without
one are not capped)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pulserec.online.base import CoOccurrenceRows
from pulserec.recommend.top_n import top_n

#: Candidates considered per slot, and at most (a MAX_POOL^2 float matrix is 2 MB).
POOL_PER_SLOT = 5
MAX_POOL = 500
#: With only a category cap, candidates are read in score order up to this many per slot.
CAP_POOL_PER_SLOT = 20


@dataclass(frozen=True)
class Diversity:
    max_per_category: int | None = None
    diversity: float = 0.0

    @property
    def active(self) -> bool:
        return self.max_per_category is not None or self.diversity > 0


def cooc_similarity(cooc: CoOccurrenceRows) -> Callable[[np.ndarray], np.ndarray]:
    """Pairwise item similarity of a pool (P x P, zero diagonal) from the co-occurrence rows."""
    def similarity(pool: np.ndarray) -> np.ndarray:
        size = len(pool)
        out = np.zeros((size, size), dtype=np.float64)
        present = [i for i, item in enumerate(pool.tolist()) if cooc.has_item(item)]
        if not present:
            return out
        neighbours, sims, src = cooc.similar_rows([int(pool[i]) for i in present])
        order = np.argsort(pool, kind="stable")
        at = np.searchsorted(pool[order], neighbours)
        at = np.minimum(at, size - 1)
        hit = pool[order][at] == neighbours
        rows = np.asarray(present, dtype=np.int64)[src[hit]]
        cols = order[at[hit]]
        np.maximum.at(out, (rows, cols), np.maximum(sims[hit], 0.0))
        out = np.maximum(out, out.T)  # a pair counts once whichever row holds it
        np.fill_diagonal(out, 0.0)
        top = out.max()
        return out / top if top > 0 else out
    return similarity


def rerank(scores: np.ndarray, mask: np.ndarray, n: int, rules: Diversity, categories: np.ndarray,
           similarity: Callable[[np.ndarray], np.ndarray], taken: np.ndarray | None = None) -> np.ndarray:
    """The n picks (item indices, in slate order) under `rules`; `taken` items are already on the
    slate (their categories count towards the cap and MMR keeps away from them)."""
    if not rules.active:
        return top_n(scores, n, mask)
    taken = np.empty(0, dtype=np.int64) if taken is None else taken
    per_slot = POOL_PER_SLOT if rules.diversity > 0 else CAP_POOL_PER_SLOT
    pool = top_n(scores, min(MAX_POOL if rules.diversity > 0 else 10 * MAX_POOL, max(per_slot * n, 50)), mask)
    if len(pool) == 0 or n <= 0:
        return pool[:0]
    cats = categories[pool] if len(categories) else np.full(len(pool), -1)
    counts: dict[int, int] = {}
    for cat in categories[taken].tolist() if len(categories) and len(taken) else []:
        counts[cat] = counts.get(cat, 0) + 1
    blocked = np.zeros(len(pool), dtype=bool)
    if rules.max_per_category is not None:
        for cat, count in counts.items():
            if cat >= 0 and count >= rules.max_per_category:
                blocked |= cats == cat
    if rules.diversity <= 0:  # the cap alone: score order
        return _capped(pool, cats, blocked, counts, n, rules.max_per_category)
    return _mmr(pool, scores[pool], cats, blocked, counts, n, rules, similarity, taken)


def _capped(pool: np.ndarray, cats: np.ndarray, blocked: np.ndarray, counts: dict[int, int], n: int, cap: int | None) -> np.ndarray:
    picks = []
    for i, cat in enumerate(cats.tolist()):
        if blocked[i] or (cap is not None and cat >= 0 and counts.get(cat, 0) >= cap):
            continue
        picks.append(i)
        counts[cat] = counts.get(cat, 0) + 1
        if len(picks) == n:
            break
    return pool[np.asarray(picks, dtype=np.int64)]


def _mmr(pool: np.ndarray, relevance: np.ndarray, cats: np.ndarray, blocked: np.ndarray, counts: dict[int, int], n: int,
         rules: Diversity, similarity: Callable[[np.ndarray], np.ndarray], taken: np.ndarray) -> np.ndarray:
    top = float(relevance.max())
    rel = relevance / top if top > 0 else np.zeros(len(pool))
    combined = np.concatenate([pool, taken]) if len(taken) else pool
    sims = similarity(combined)
    closest = sims[: len(pool), len(pool):].max(axis=1) if len(taken) else np.zeros(len(pool))
    sims = sims[: len(pool), : len(pool)]
    d = rules.diversity
    cap = rules.max_per_category
    picks: list[int] = []
    available = ~blocked
    while len(picks) < n and available.any():
        value = np.where(available, (1.0 - d) * rel - d * closest, -np.inf)
        best = int(np.argmax(value))  # ties: the earlier, better-scored candidate
        picks.append(best)
        available[best] = False
        closest = np.maximum(closest, sims[best])
        cat = int(cats[best])
        counts[cat] = counts.get(cat, 0) + 1
        if cap is not None and cat >= 0 and counts[cat] >= cap:
            available &= cats != cat
    return pool[np.asarray(picks, dtype=np.int64)]


def tag_similarity(tags: list[tuple[str, ...]]) -> Callable[[np.ndarray], np.ndarray]:
    """Jaccard similarity of item tags (genres for MovieLens): a measure of a slate's variety
    that MMR does not optimise directly (it uses co-occurrence)."""
    def similarity(pool: np.ndarray) -> np.ndarray:
        sets = [set(tags[i]) for i in pool.tolist()]
        out = np.array([[len(a & b) / len(a | b) if a | b else 0.0 for b in sets] for a in sets])
        np.fill_diagonal(out, 0.0)
        return out
    return similarity


def intra_list_diversity(picks: np.ndarray, similarity: Callable[[np.ndarray], np.ndarray]) -> float:
    """1 - the mean pairwise similarity of a slate (0 for fewer than two items)."""
    if len(picks) < 2:
        return 0.0
    sims = similarity(np.asarray(picks, dtype=np.int64))
    size = len(picks)
    return 1.0 - float(sims.sum()) / (size * (size - 1))
