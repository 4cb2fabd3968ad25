"""Features of the re-ranking stage (models/rerank.py): one row per (query, candidate item).

The candidates are the union of every source's top `depth` unseen items. Per candidate:

- per source: its normalised score (models/blend.py's `normalised`, as the blend sees it) and
  its rank among the query's candidates by that score (0 = the source's best candidate);
- the sum of the normalised scores (the equal-weight blend, a strong single feature);
- the item: log all-time count, log count over the log's last RECENT_S, log days since it first
  appeared (its age) - from the training log;
- the user: log history length, log days since their latest event (the gap to the log's head);
- the user x item: the share of the user's history in the item's genres (category and tags of
  the catalogue; 0 without a catalogue); when the item first appeared relative to the user's
  latest event (signed log days: an item that appeared after a user stopped is one they never
  saw), and how often the item was taken by anyone while the user was active (log count of its
  events between the user's first and latest event: what was on offer when they were there).

Everything is vectorised over all candidates of all queries (one NumPy pass per feature)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from pulserec.models.base import Query
from pulserec.models.interactions import Interactions
from pulserec.online.catalog import Catalog

#: "Recent" popularity counts the log's last 30 days.
RECENT_S = 30 * 86_400.0
DAY = 86_400.0
OTHER_FEATURES = ("blend_sum", "item_log_count", "item_log_recent", "item_log_age_days", "user_log_history",
                  "user_log_gap_days", "genre_share", "item_first_vs_user_last", "item_log_count_while_active")



def feature_names(sources: Sequence[str]) -> list[str]:
    return [*(f"{s}:score" for s in sources), *(f"{s}:rank" for s in sources), *OTHER_FEATURES]


@dataclass
class ItemStats:
    """What the features read of the items, fixed at fit time from the training log and catalogue."""

    count: np.ndarray = field(default_factory=lambda: np.zeros(0))
    recent: np.ndarray = field(default_factory=lambda: np.zeros(0))
    first_seen: np.ndarray = field(default_factory=lambda: np.zeros(0))
    genres: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0), dtype=np.float32))
    #: Each training event keyed item * span + (ts - origin), sorted: one searchsorted answers "the
    #: events of item j in [a, b]" (float64 is exact while items x span < 2^53: 3 years of seconds
    #: and 90M items). key_frame = (origin, span).
    event_keys: np.ndarray = field(default_factory=lambda: np.zeros(0))
    key_frame: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    user_first: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per training user
    user_last: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def fit(cls, data: Interactions, catalog: Catalog | None) -> ItemStats:
        n = data.n_items
        head = float(data.timestamps.max()) if len(data) else 0.0
        count = np.bincount(data.items, minlength=n).astype(np.float64)
        recent = np.bincount(data.items[data.timestamps >= head - RECENT_S], minlength=n).astype(np.float64)
        first = np.full(n, head)
        np.minimum.at(first, data.items, data.timestamps)
        user_first, user_last = np.full(data.n_users, np.inf), np.full(data.n_users, -np.inf)
        np.minimum.at(user_first, data.users, data.timestamps)
        np.maximum.at(user_last, data.users, data.timestamps)
        origin = float(data.timestamps.min()) if len(data) else 0.0
        span = head - origin + 1.0
        keys = np.sort(data.items.astype(np.float64) * span + (data.timestamps - origin))
        return cls(count, recent, first, item_genres(data, catalog), keys, np.array([origin, span]), user_first, user_last)

    def arrays(self) -> dict[str, object]:
        return {"count": self.count, "recent": self.recent, "first_seen": self.first_seen, "genres": self.genres,
                "event_keys": self.event_keys, "key_frame": self.key_frame, "user_first": self.user_first, "user_last": self.user_last}

    def active_window(self, queries: Sequence[Query]) -> tuple[np.ndarray, np.ndarray]:
        """Each query's user's (first, latest) event time: the training log's for a known user,
        widened by the query's own events (a new user: those alone; none: now, now)."""
        first = np.array([q.timestamps.min() if len(q.timestamps) else q.now for q in queries], dtype=np.float64)
        last = np.array([q.timestamps.max() if len(q.timestamps) else q.now for q in queries], dtype=np.float64)
        for r, q in enumerate(queries):
            if q.user is not None and 0 <= q.user < len(self.user_first) and np.isfinite(self.user_first[q.user]):
                first[r] = min(first[r], self.user_first[q.user]) if len(q.timestamps) else self.user_first[q.user]
                last[r] = max(last[r], self.user_last[q.user]) if len(q.timestamps) else self.user_last[q.user]
        return first, last

    def events_between(self, items: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """How many training events each item had in [low, high] (per candidate)."""
        origin, span = self.key_frame
        base = items.astype(np.float64) * span
        high = np.clip(high - origin, -1.0, span - 1.0)  # the window within the log's own span
        low = np.clip(low - origin, 0.0, span)
        return np.maximum(np.searchsorted(self.event_keys, base + high, side="right")
                          - np.searchsorted(self.event_keys, base + low, side="left"), 0).astype(np.float64)


def item_genres(data: Interactions, catalog: Catalog | None) -> sp.csr_matrix:
    """(items x genres) binary: each item's catalogue category and tags (empty without a catalogue)."""
    rows, names = [], []
    if catalog is not None:
        for idx, item_id in enumerate(data.item_ids.ids_of(range(data.n_items))):
            record = catalog.get(item_id)
            if record is not None:
                for genre in {record.category, *record.tags} - {None, ""}:
                    rows.append(idx)
                    names.append(genre)
    codes, cols = np.unique(np.array(names, dtype=object), return_inverse=True) if names else (np.zeros(0), np.zeros(0, np.int64))
    return sp.csr_matrix((np.ones(len(rows), np.float32), (np.array(rows, np.int64), cols)),
                         shape=(data.n_items, len(codes)))


def candidates(parts: np.ndarray, seen: sp.csr_matrix, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) of the union of each source's top `depth` unseen items per query; `parts` is
    (sources x queries x items) normalised scores (0 where a source cannot score)."""
    n_sources, n_queries, n_items = parts.shape
    blocked = seen.toarray().astype(bool) if seen.nnz else np.zeros((n_queries, n_items), bool)
    union = np.zeros((n_queries, n_items), dtype=bool)
    k = min(depth, n_items)
    for c in range(n_sources):
        scores = np.where(blocked | (parts[c] <= 0), -np.inf, parts[c])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        hit = np.isfinite(np.take_along_axis(scores, top, axis=1))
        union[np.repeat(np.arange(n_queries), k)[hit.ravel()], top.ravel()[hit.ravel()]] = True
    rows, items = np.nonzero(union)
    return rows, items


def ranks_within(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rank of each value within its row's candidates, largest first (rows ascending)."""
    order = np.lexsort((-values, rows))
    starts = np.r_[0, np.flatnonzero(np.diff(rows[order])) + 1] if len(rows) else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, len(rows)])
    rank = np.empty(len(rows), dtype=np.float32)
    rank[order] = np.arange(len(rows)) - np.repeat(starts, counts)
    return rank


def candidate_features(parts: np.ndarray, rows: np.ndarray, items: np.ndarray, queries: Sequence[Query],
                       stats: ItemStats) -> np.ndarray:
    """(candidates x features) float32 in :func:`feature_names` order."""
    scores = parts[:, rows, items]  # sources x candidates
    ranks = np.stack([ranks_within(rows, s) for s in scores]) if len(scores) else scores
    now = np.array([q.now for q in queries], dtype=np.float64)
    first, last = stats.active_window(queries)
    history = np.array([max(len(q.history), len(q.items)) for q in queries], dtype=np.float64)
    known = items < len(stats.count)
    safe = np.where(known, items, 0)
    count = np.where(known, stats.count[safe], 0.0)
    recent = np.where(known, stats.recent[safe], 0.0)
    age = np.where(known, now[rows] - stats.first_seen[safe], 0.0)
    other = np.stack([
        scores.sum(axis=0),
        np.log1p(count), np.log1p(recent), np.log1p(np.maximum(age, 0.0) / DAY),
        np.log1p(history[rows]), np.log1p(np.maximum(now - last, 0.0) / DAY)[rows],
        genre_share(queries, rows, items, stats.genres),
        signed_log_days(np.where(known, stats.first_seen[safe], now[rows]) - last[rows]),
        np.log1p(np.where(known, stats.events_between(safe, first[rows], last[rows]), 0.0)),
    ])
    return np.concatenate([scores, ranks, other]).T.astype(np.float32)


def signed_log_days(seconds: np.ndarray) -> np.ndarray:
    return np.sign(seconds) * np.log1p(np.abs(seconds) / DAY)


def genre_share(queries: Sequence[Query], rows: np.ndarray, items: np.ndarray, genres: sp.csr_matrix) -> np.ndarray:
    """Per candidate: the mean, over the item's genres, of the share of the user's history in that genre."""
    n_items, n_genres = genres.shape
    if n_genres == 0 or len(rows) == 0:
        return np.zeros(len(rows))
    hist_rows, hist_items = [], []
    for r, q in enumerate(queries):
        seen = q.history if len(q.history) else q.items
        seen = seen[(seen >= 0) & (seen < n_items)]
        hist_rows.append(np.full(len(seen), r))
        hist_items.append(seen)
    h = sp.csr_matrix((np.ones(sum(map(len, hist_items)), np.float32),
                       (np.concatenate(hist_rows), np.concatenate(hist_items))), shape=(len(queries), n_items))
    profile = np.asarray((h @ genres).todense(), dtype=np.float32)
    profile /= np.maximum(np.asarray(h.sum(axis=1)), 1.0)
    known = items < n_items
    item_g = genres[np.where(known, items, 0)]
    share = np.asarray(item_g.multiply(profile[rows]).sum(axis=1)).ravel()
    per_item = np.maximum(np.asarray(item_g.sum(axis=1)).ravel(), 1.0)
    return np.where(known, share / per_item, 0.0)
