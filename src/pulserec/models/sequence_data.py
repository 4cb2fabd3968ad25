"""Users' event sequences as sequence-model inputs (numpy only, no torch).

Every event becomes three integer tokens:

* the item token, ``item index + 1`` (0 is padding);
* the event-type token, from an :class:`EventVocabulary` (0 padding, 1 unknown type);
* the time-gap token: ``log2(1 + seconds since the user's previous event)`` in whole buckets
  (0 padding, 1 "no known previous event").

All users' sequences are packed end to end in a :class:`SequenceLog` (CSR layout: user ``u``'s
events are rows ``offsets[u]:offsets[u + 1]``, oldest first). Batches are *left padded*: the most
recent event is always in the last column, which is where the models read their prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pulserec.models.base import Query
from pulserec.models.interactions import Interactions

PAD = 0
UNKNOWN_TYPE = 1
NO_PREVIOUS_GAP = 1
_FIRST_REAL_TOKEN = 2


@dataclass(frozen=True)
class EventVocabulary:
    """Maps event-type names and time gaps to embedding tokens."""

    types: tuple[str, ...]
    n_gap_buckets: int = 30  # log2 buckets: 2**30 s is 34 years, larger gaps share the last one

    @classmethod
    def from_types(cls, names: np.ndarray | Sequence[str], n_gap_buckets: int = 30) -> EventVocabulary:
        return cls(tuple(sorted({str(name) for name in names})), n_gap_buckets)

    @property
    def n_type_tokens(self) -> int:
        return len(self.types) + _FIRST_REAL_TOKEN

    @property
    def n_gap_tokens(self) -> int:
        return self.n_gap_buckets + _FIRST_REAL_TOKEN

    def type_tokens(self, names: np.ndarray | Sequence[str]) -> np.ndarray:
        lookup = {name: i + _FIRST_REAL_TOKEN for i, name in enumerate(self.types)}
        return np.fromiter((lookup.get(str(n), UNKNOWN_TYPE) for n in names), dtype=np.int64, count=len(names))

    def gap_tokens(self, gaps: np.ndarray) -> np.ndarray:
        """Tokens for gaps in seconds; NaN (no previous event) maps to NO_PREVIOUS_GAP."""
        gaps = np.asarray(gaps, dtype=np.float64)
        buckets = np.floor(np.log2(1.0 + np.clip(np.nan_to_num(gaps, nan=0.0), 0.0, None)))
        tokens = np.minimum(buckets, self.n_gap_buckets - 1).astype(np.int64) + _FIRST_REAL_TOKEN
        return np.where(np.isnan(gaps), NO_PREVIOUS_GAP, tokens)


@dataclass
class TokenBatch:
    """Left-padded token matrices of shape (batch, width); row i is one sequence."""

    items: np.ndarray
    types: np.ndarray
    gaps: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    @property
    def width(self) -> int:
        return self.items.shape[1]


@dataclass
class SequenceLog:
    """All users' chronological token sequences packed end to end."""

    items: np.ndarray
    types: np.ndarray
    gaps: np.ndarray
    offsets: np.ndarray  # length n_users + 1

    @classmethod
    def from_interactions(cls, data: Interactions, vocab: EventVocabulary) -> SequenceLog:
        """Group the log by user and order each user's events by time (ties keep log order)."""
        order = np.lexsort((data.timestamps, data.users))
        users = data.users[order]
        timestamps = data.timestamps[order]
        gaps = np.empty(len(order), dtype=np.float64)
        gaps[1:] = np.diff(timestamps)
        first = np.ones(len(order), dtype=bool)
        first[1:] = users[1:] != users[:-1]
        gaps[first] = np.nan
        counts = np.bincount(users, minlength=data.n_users)
        return cls(
            items=data.items[order] + 1,
            types=vocab.type_tokens(data.types[order]),
            gaps=vocab.gap_tokens(gaps),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        )

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def hold_out_last(self, min_length: int) -> tuple[SequenceLog, np.ndarray, np.ndarray]:
        """Remove the last event of every user with at least `min_length` events.

        Returns (remaining log, those users, their held-out item tokens)."""
        users = np.flatnonzero(self.lengths >= min_length)
        last = self.offsets[users + 1] - 1
        keep = np.ones(len(self.items), dtype=bool)
        keep[last] = False
        lengths = self.lengths.copy()
        lengths[users] -= 1
        remaining = SequenceLog(
            items=self.items[keep],
            types=self.types[keep],
            gaps=self.gaps[keep],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        )
        return remaining, users, self.items[last]

    def training_windows(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of windows of at most `width` events covering every user's sequence.

        Windows are cut from the end of each sequence and overlap by one event, so every event
        after a user's first is a prediction target exactly once; windows of one event (nothing
        to predict) are skipped."""
        stride = width - 1
        lengths = self.lengths
        n_windows = np.where(lengths >= 2, -(-(lengths - 1) // stride), 0)
        owner = np.repeat(np.arange(self.n_users), n_windows)
        # k-th window from the end of each user's sequence
        k = np.arange(len(owner)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
        ends = self.offsets[owner + 1] - k * stride
        starts = np.maximum(self.offsets[owner], ends - width)
        return starts, ends

    def window_batch(self, starts: np.ndarray, ends: np.ndarray, width: int) -> TokenBatch:
        """Rows [start, end) of the packed log, left padded to `width` (longer ones keep their tail)."""
        index = ends[:, None] - width + np.arange(width)[None, :]
        valid = index >= starts[:, None]
        index = np.where(valid, index, 0)
        return TokenBatch(
            *(np.where(valid, column[index], PAD) for column in (self.items, self.types, self.gaps))
        )

    def user_tails(self, users: np.ndarray, width: int) -> TokenBatch:
        """The last `width` events of each user, left padded."""
        return self.window_batch(self.offsets[users], self.offsets[users + 1], width)

    def user_items(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row in `users`, item token) for every event of the given users."""
        lengths = self.lengths[users]
        rows = np.repeat(np.arange(len(users)), lengths)
        index = np.repeat(self.offsets[users], lengths) + (
            np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        return rows, self.items[index]


@dataclass
class EncodedQuery:
    """A query's known events as chronological tokens, plus where each came from in `query.items`."""

    items: np.ndarray
    types: np.ndarray
    gaps: np.ndarray
    source: np.ndarray  # index into query.items of each token

    def __len__(self) -> int:
        return len(self.items)


def encode_query(query: Query, vocab: EventVocabulary, known: np.ndarray, max_len: int) -> EncodedQuery:
    """Turn a query (most recent first) into the model's chronological input.

    Items the model does not know (index beyond its catalogue, or never seen in training) are
    dropped; types and timestamps are used when they align with the items, otherwise they read
    as "unknown". At most the `max_len` most recent known events are kept."""
    items = np.asarray(query.items, dtype=np.int64)
    in_range = (items >= 0) & (items < len(known))
    is_known = np.zeros(len(items), dtype=bool)
    is_known[in_range] = known[items[in_range]]
    timestamps = np.asarray(query.timestamps, dtype=np.float64)
    if len(timestamps) == len(items):  # untimed items are the query's long-term part: no order, no sequence
        is_known &= ~np.isnan(timestamps)
    source = np.flatnonzero(is_known)[:max_len][::-1].copy()
    if len(query.types) == len(items):
        types = vocab.type_tokens([query.types[i] for i in source])
    else:
        types = np.full(len(source), UNKNOWN_TYPE, dtype=np.int64)
    gaps = np.full(len(source), np.nan)
    if len(timestamps) == len(items) and len(source) > 1:
        gaps[1:] = np.diff(timestamps[source])
    return EncodedQuery(items[source] + 1, types, vocab.gap_tokens(gaps), source)


def pad_queries(encoded: Sequence[EncodedQuery], width: int) -> TokenBatch:
    """Left-pad encoded queries into one batch."""
    batch = TokenBatch(*(np.zeros((len(encoded), width), dtype=np.int64) for _ in range(3)))
    for row, query in enumerate(encoded):
        n = len(query)
        if n:
            batch.items[row, width - n :] = query.items
            batch.types[row, width - n :] = query.types
            batch.gaps[row, width - n :] = query.gaps
    return batch
