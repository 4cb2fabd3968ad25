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
        add = self.add
        return np.fromiter((add(v) for v in uniques.tolist()), dtype=np.int64, count=len(uniques))[codes]

    @property
    def ids(self) -> list[str]:
        return self._ids

    def __getstate__(self) -> list[str]:
        return self._ids

    def __setstate__(self, state: list[str]) -> None:
        self._ids = list(state)
        self._index = {v: i for i, v in enumerate(self._ids)}
