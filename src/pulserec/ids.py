"""Interning of opaque string ids into dense integer indices (and back)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd


class IdIndex:
    """A growing bijection between external string ids and dense ints 0..n-1.

    Removed ids keep their slot (indices stay stable for every array aligned to them)."""

    __slots__ = ("_index", "_ids")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        for value in ids:
            self.add(value)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, value: object) -> bool:
        return value in self._index

    def add(self, value: str) -> int:
        idx = self._index.get(value)
        if idx is None:
            idx = len(self._ids)
            self._index[value] = idx
            self._ids.append(value)
        return idx

    def get(self, value: str) -> int | None:
        return self._index.get(value)

    def indices_of(self, values: list[str]) -> list[int | None]:
        """The index of each value, None for those not interned (one C-level pass of lookups)."""
        return list(map(self._index.get, values))

    def id_of(self, idx: int) -> str:
        return self._ids[idx]

    def ids_of(self, indices: Iterable[int]) -> list[str]:
        ids = self._ids
        return [ids[i] for i in indices]

    def add_many(self, values: Iterable[str]) -> np.ndarray:
        """Intern many ids at once; returns their indices as int64. Each distinct id is looked up
        once (a bulk frame repeats its users and items many times), in order of first appearance,
        so indices are those one `add` per value would give."""
        values = values if isinstance(values, np.ndarray) else np.fromiter(values, dtype=object)
        if not len(values):
            return np.zeros(0, dtype=np.int64)
        codes, uniques = pd.factorize(values)
        distinct = uniques.tolist()
        # Known ids by one pass of lookups; only new ones (few once a bulk load has seen its
        # users) go through `add`, in order of first appearance as before.
        found = self.indices_of(distinct)
        add = self.add
        for k in [k for k, idx in enumerate(found) if idx is None]:
            found[k] = add(distinct[k])
        return np.fromiter(found, dtype=np.int64, count=len(found))[codes]

    @property
    def ids(self) -> list[str]:
        return self._ids

    def __getstate__(self) -> list[str]:
        return self._ids

    def __setstate__(self, state: list[str]) -> None:
        self._ids = list(state)
        self._index = {v: i for i, v in enumerate(self._ids)}


def distinct_of(indices: np.ndarray) -> np.ndarray:
    """`np.unique` of non-negative int indices into a dense range (owners, items), by marking
    them in a boolean array instead of sorting: O(n + range), the same sorted result."""
    if not len(indices):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(_marked(indices))


def distinct_inverse(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`np.unique(indices, return_inverse=True, return_counts=True)` of non-negative int
    indices into a dense range, without sorting (see `distinct_of`)."""
    if not len(indices):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    seen = _marked(indices)
    rank = np.cumsum(seen) - 1
    inverse = rank[indices]
    return np.flatnonzero(seen), inverse, np.bincount(inverse, minlength=int(rank[-1]) + 1)


def _marked(indices: np.ndarray) -> np.ndarray:
    """A boolean array over 0..max(indices), True where an index occurs (`indices` not empty)."""
    seen = np.zeros(int(indices.max()) + 1, dtype=bool)
    seen[indices] = True
    return seen
