"""Profiles in a snapshot: the `ProfileTable`'s columns as they are, and back.

The table already keeps every profile in arrays, so a snapshot writes them (each keyed table's
main, delta and pending entries as they are) and a start loads them without building anything
per user. `ProfileImage` is one log position's view of a table that writers go on changing:
its columns are frozen copy-on-write (`pulserec/frozen.py`) and read as the file is written."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from pulserec.frozen import FrozenArrays
from pulserec.ids import IdIndex
from pulserec.online.snapshot_file import Member, whole
from pulserec.online.strings import pack_in_steps, unpack
from pulserec.profiles.table import DENSE, ProfileTable

Arrays = dict[str, np.ndarray]
_PARTS = ("keys", "values", "ts")


class ProfileImage:
    """The columns of owner slots up to `n_owners` (an empty slot holds no data) as of now
    (built with writers held still: O(columns + pending entries))."""

    def __init__(self, table: ProfileTable, n_owners: int, frozen: FrozenArrays) -> None:
        self.table, self.n_owners, self.frozen = table, n_owners, frozen
        table.freeze(frozen)
        self.columns = {"prof.exists": table.exists, "prof.counts": table.counts,
                        **{f"prof.{name}": table.dense[name] for name in DENSE}}
        self.searches = np.array([table._searches], dtype=np.int64)
        self.types = table.types.ids[: len(table.types)]
        self.keyed = {name: keyed.levels() for name, keyed in table.keyed.items()}
        self.names = {name: (index.ids, len(index)) for name, index in table.names.items()}

    def exists(self) -> np.ndarray:
        """Which owner slots hold a profile (read first: the owners' ids depend on it)."""
        exists = self.frozen.image(self.columns["prof.exists"], self.n_owners)
        return np.r_[exists, np.zeros(self.n_owners - len(exists), dtype=bool)]

    def members(self, exists: np.ndarray, pause: Callable[[], None]) -> Iterator[Member]:
        yield whole("prof.exists", exists)
        yield whole("prof.searches.next", self.searches)
        for name, column in self.columns.items():
            if name != "prof.exists":
                fill = DENSE[name[5:]][2] if name[5:] in DENSE else 0
                yield self._rows(name, column, fill)
        yield from string_members("prof.types", self.types, pause)
        for name, (main, delta, later) in self.keyed.items():
            yield from (self._level(f"prof.{name}.{part}", (column,)) for part, column in zip(_PARTS, main))
            yield from (self._level(f"prof.{name}.delta.{part}", (column,)) for part, column in zip(_PARTS, delta))
            # The delta a background merge fills, and the single entries: unsorted "pending" (a load adds them).
            yield from (self._level(f"prof.{name}.pending.{part}", columns) for part, columns in zip(_PARTS, zip(*later)))
            ids, n = self.names[name]
            yield from string_members(f"prof.{name}.names", ids[:n], pause)

    def _rows(self, name: str, column: np.ndarray, fill) -> Member:
        """The first `n_owners` rows of a frozen column (fresh rows past its end)."""
        n, shape = self.n_owners, column.shape[1:]

        def chunks() -> Iterator[np.ndarray]:
            left = n
            for chunk in self.frozen.chunks(column, rows=n):
                yield chunk[:left]
                left -= len(chunk[:left])
            if left > 0:
                yield np.full((left, *shape), fill, dtype=column.dtype)

        return Member(name, column.dtype, (n, *shape), chunks())

    def _level(self, name: str, columns: tuple[np.ndarray, ...]) -> Member:
        """One column of a table's level, or of several levels read one after the other."""
        chunks = (chunk for column in columns for chunk in self.frozen.chunks(column))
        return Member(name, columns[0].dtype, (sum(len(column) for column in columns),), chunks)

    def release(self) -> None:
        self.table.thaw()


def string_members(name: str, strings, pause: Callable[[], None], n: int | None = None) -> Iterator[Member]:
    """Strings as the two arrays of `strings.pack` (`n`: how many, when `strings` is an iterator)."""
    n = len(strings) if n is None else n
    pieces = pack_in_steps(strings, n, pause)
    yield Member(f"{name}.data", np.dtype(np.uint8), (pieces.n_bytes,), pieces.data)
    yield Member(f"{name}.offsets", np.dtype(np.int64), (n + 1,), pieces.offsets)


def load_profiles(table: ProfileTable, arrays: Arrays) -> None:
    """Fill an empty table from `ProfileImage`'s columns."""
    table.exists = arrays["prof.exists"].astype(bool)
    table.counts = arrays["prof.counts"].astype(np.int32)
    table._searches = int(arrays["prof.searches.next"][0])
    for name in DENSE:
        table.dense[name] = arrays[f"prof.{name}"].copy()
    table.types = IdIndex(unpack(arrays["prof.types.data"], arrays["prof.types.offsets"]))
    for name, keyed in table.keyed.items():
        level = [arrays[f"prof.{name}.{part}"] for part in ("keys", "values", "ts")]
        keyed.load(*level, delta=tuple(arrays[f"prof.{name}.delta.{part}"] for part in ("keys", "values", "ts")),
                   pending=tuple(arrays[f"prof.{name}.pending.{part}"] for part in ("keys", "values", "ts")))
        table.names[name] = IdIndex(unpack(arrays[f"prof.{name}.names.data"], arrays[f"prof.{name}.names.offsets"]))
    table._live = int(table.exists.sum())
