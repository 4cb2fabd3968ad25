"""Content-based model: TF-IDF over each item's title, category, tags and description.

The user's taste is the decayed, weighted mean of the TF-IDF vectors of their recent items
(`query.items`, most recent first, weighted by `query.weights` and halved every
`decay_halflife` positions); items are scored by cosine with that taste. Items that have
metadata but no events yet are scored like any other, which is what solves item cold start.

The model's item numbering is the training log's, extended with catalogue items that had no
events (appended in catalogue order); `self.item_ids` holds it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import ClassVar

import numpy as np
import scipy.sparse as sp

from pulserec.ids import IdIndex
from pulserec.models.base import BatchScorer, Query, Reason, pad_scores
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.weighting import RowWeighting, as_dense, l2_normalise_rows, queries_matrix
from pulserec.online.catalog import Catalog
from pulserec.records import ItemRecord

TOKEN = re.compile(r"[a-z0-9]+")


def item_text(record: ItemRecord) -> list[str]:
    """Tokens of an item: words of title/description, whole category and tags as single tokens too."""
    words = TOKEN.findall(" ".join(filter(None, [record.title, record.description])).lower())
    labels = [record.category, *record.tags]
    words += ["#" + label.strip().lower() for label in labels if label]
    return words


def term_matrix(documents: Iterable[list[str]], vocabulary: IdIndex, grow: bool = True) -> sp.csr_matrix:
    """Term counts (documents x terms); unknown terms are added when `grow`, else skipped."""
    rows, cols = [], []
    for r, tokens in enumerate(documents):
        ids = [vocabulary.add(t) if grow else vocabulary.get(t) for t in tokens]
        ids = [i for i in ids if i is not None]
        rows.extend([r] * len(ids))
        cols.extend(ids)
    n_rows = (max(rows) + 1) if rows else 0
    matrix = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
        shape=(n_rows, len(vocabulary)),
    )
    matrix.sum_duplicates()
    return matrix


class ContentTFIDF(BatchScorer, SavedState):
    name: ClassVar[str] = "content"
    saved_fields: ClassVar[tuple[str, ...]] = ("user_ids", "item_ids", "item_vectors", "vocabulary")

    def __init__(self, decay_halflife: float = 10.0, min_df: int = 1) -> None:
        self.decay_halflife = decay_halflife
        self.min_df = min_df
        self.item_vectors = sp.csr_matrix((0, 0), dtype=np.float32)
        self.vocabulary = IdIndex()

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> ContentTFIDF:
        self.user_ids = data.user_ids
        self.item_ids = IdIndex(data.item_ids.ids)
        records: dict[int, ItemRecord] = {}
        for record in catalog.records() if catalog is not None else []:
            records[self.item_ids.add(record.item_id)] = record
        docs = [item_text(records[i]) if i in records else [] for i in range(len(self.item_ids))]
        self.vocabulary = IdIndex()
        counts = term_matrix(docs, self.vocabulary)
        counts.resize((len(docs), len(self.vocabulary)))
        if self.min_df > 1:
            df = np.bincount(counts.indices, minlength=counts.shape[1])
            counts = counts[:, df >= self.min_df]
        self.item_vectors = l2_normalise_rows(RowWeighting("tfidf").fit(counts).transform(counts))
        return self

    @property
    def n_known(self) -> int:
        return self.item_vectors.shape[0]

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        tastes = queries_matrix(queries, self.n_known, self.decay_halflife) @ self.item_vectors
        scores = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        ok = tastes.getnnz(axis=1) > 0
        n = min(n_items, self.n_known)
        scores[ok, :n] = as_dense(l2_normalise_rows(tastes[ok]) @ self.item_vectors[:n].T)
        return scores


    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        if not 0 <= item < self.n_known or self.item_vectors[item].nnz == 0:
            return None
        return pad_scores(as_dense(self.item_vectors @ self.item_vectors[item].T).ravel(), n_items)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        """"Similar to <the history item whose content is closest>"."""
        return nearest_history_reasons(query, items, self.n_known,
                                       lambda h, t: as_dense(self.item_vectors[h] @ self.item_vectors[t].T))


def nearest_history_reasons(query: Query, items: np.ndarray, n_known: int,
                            similarity: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> list[Reason | None]:
    """For each item, Reason("content") pointing at the most similar item of the query's history
    (`similarity(history, targets)` gives the history x targets matrix of a content model)."""
    history = np.asarray(query.items, dtype=np.int64)
    known = np.flatnonzero((history >= 0) & (history < n_known))
    targets = np.asarray(items, dtype=np.int64)
    if len(known) == 0 or len(targets) == 0:
        return [None] * len(targets)
    inside = (targets >= 0) & (targets < n_known)
    sims = similarity(history[known], np.where(inside, targets, 0))
    best = sims.argmax(axis=0)
    return [
        Reason("content", item=int(history[known[b]]),
               event_type=query.types[known[b]] if known[b] < len(query.types) else None)
        if inside[c] and sims[b, c] > 0 else None
        for c, b in enumerate(best)
    ]
