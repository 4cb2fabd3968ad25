"""Profiles in a snapshot: columns written from `UserProfile` objects, and read back lazily.

Building a `UserProfile` costs ~50-150 us, so a start that built all of a million users' would
take minutes. `ProfileColumns` keeps the snapshot's columns and builds a user's profile the
first time something reads or updates it (`Profiles(backing=...)`); a later snapshot writes the
built profiles and copies the columns of the others as they are."""

from __future__ import annotations

import numpy as np

from pulserec.ids import IdIndex
from pulserec.online.strings import pack, unpack
from pulserec.profiles import Profiles, UserProfile

Arrays = dict[str, np.ndarray]
COUNTERS = ("counts", "devices", "locations")
DECAYED = ("categories", "tags")
KEYED = (*COUNTERS, *DECAYED)


def ranges(offsets: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenated arange(offsets[r], offsets[r + 1]) for each r in rows."""
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(total)


def _bounds(lengths: np.ndarray) -> np.ndarray:
    return np.r_[0, np.cumsum(lengths)].astype(np.int64)


class ProfileColumns:
    """The profiles of a snapshot, each built into a `UserProfile` on first use."""

    def __init__(self, arrays: Arrays, interest_halflife: float) -> None:
        self.arrays = {k: v for k, v in arrays.items() if k.startswith("prof.")}
        self.halflife = interest_halflife
        owners = self.arrays["prof.owners"]
        self.row_of = np.full(int(owners.max()) + 1 if len(owners) else 0, -1, dtype=np.int64)
        self.row_of[owners] = np.arange(len(owners))
        self.left = len(owners)
        self.bounds = {name: _bounds(self.arrays[f"prof.{name}.lengths"]) for name in (*KEYED, "searches")}
        self.names = {name: unpack(self.arrays[f"prof.{name}.names.data"], self.arrays[f"prof.{name}.names.offsets"])
                      for name in KEYED}

    def __len__(self) -> int:
        return self.left

    def _row(self, owner: int) -> int:
        return int(self.row_of[owner]) if 0 <= owner < len(self.row_of) else -1

    def __contains__(self, owner: int) -> bool:
        return self._row(owner) >= 0

    def drop(self, owner: int) -> int:
        row = self._row(owner)
        if row >= 0:
            self.row_of[owner] = -1
            self.left -= 1
        return row

    def take(self, owner: int) -> UserProfile | None:
        """The owner's profile, built (and no longer held here), or None."""
        row = self.drop(owner)
        return None if row < 0 else self._build(row)

    def _text(self, name: str, index: int) -> str:
        offsets = self.arrays[f"{name}.offsets"]
        return self.arrays[f"{name}.data"][offsets[index] : offsets[index + 1]].tobytes().decode("utf-8", "surrogatepass")

    def _build(self, row: int) -> UserProfile:
        a = self.arrays
        profile = UserProfile(self._text("prof.user_id", row), self.halflife)
        profile.first_seen, profile.last_seen, profile.total_weight = a["prof.scalars"][row].tolist()
        profile.hours, profile.weekdays = a["prof.hours"][row].tolist(), a["prof.weekdays"][row].tolist()
        for name in KEYED:
            span = slice(self.bounds[name][row], self.bounds[name][row + 1])
            keys = [self.names[name][k] for k in a[f"prof.{name}.keys"][span].tolist()]
            values = a[f"prof.{name}.values"][span].tolist()
            if name in COUNTERS:
                getattr(profile, name).update(dict(zip(keys, values)))
            else:
                getattr(profile, name).assign(dict(zip(keys, zip(values, a[f"prof.{name}.ts"][span].tolist()))))
        span = range(self.bounds["searches"][row], self.bounds["searches"][row + 1])
        profile.searches.extend(self._text("prof.searches", i) for i in span)
        return profile

    def columns_of_rest(self) -> tuple[Arrays, np.ndarray]:
        """The columns of the profiles not built yet, and the owners they belong to."""
        a = self.arrays
        rows = np.sort(self.row_of[self.row_of >= 0])
        out: Arrays = {}
        for name in ("prof.scalars", "prof.hours", "prof.weekdays"):
            out[name] = a[name][rows]
        for name in KEYED:
            picked = ranges(self.bounds[name], rows)
            out[f"prof.{name}.lengths"] = a[f"prof.{name}.lengths"][rows]
            out[f"prof.{name}.keys"] = a[f"prof.{name}.keys"][picked]
            out[f"prof.{name}.values"] = a[f"prof.{name}.values"][picked]
            if name in DECAYED:
                out[f"prof.{name}.ts"] = a[f"prof.{name}.ts"][picked]
        out["prof.searches.lengths"] = a["prof.searches.lengths"][rows]
        for name, picked in (("prof.user_id", rows), ("prof.searches", ranges(self.bounds["searches"], rows))):
            offsets = a[f"{name}.offsets"]
            out[f"{name}.data"] = a[f"{name}.data"][ranges(offsets, picked)]
            out[f"{name}.offsets"] = _bounds(offsets[picked + 1] - offsets[picked])
        return out, a["prof.owners"][rows]


def profile_arrays(profiles: Profiles) -> Arrays:
    """Columns of every profile: those built as objects, then those still in columns."""
    built = profiles.built()
    owners = sorted(built)
    rows = [built[o] for o in owners]
    backing = profiles.backing if isinstance(profiles.backing, ProfileColumns) else None
    out: Arrays = {"prof.owners": np.array(owners, dtype=np.int64)}
    out["prof.user_id.data"], out["prof.user_id.offsets"] = pack(p.user_id for p in rows)
    out["prof.scalars"] = np.array([(p.first_seen, p.last_seen, p.total_weight) for p in rows], dtype=np.float64).reshape(-1, 3)
    out["prof.hours"] = np.array([p.hours for p in rows], dtype=np.int64).reshape(-1, 24)
    out["prof.weekdays"] = np.array([p.weekdays for p in rows], dtype=np.int64).reshape(-1, 7)
    for name in KEYED:
        counters = [getattr(p, name) if name in COUNTERS else getattr(p, name)._values for p in rows]
        keys = IdIndex(backing.names[name] if backing else ())  # the columns' codes stay valid
        pairs = [(keys.add(k), v) for c in counters for k, v in c.items()]
        out[f"prof.{name}.lengths"] = np.fromiter(map(len, counters), dtype=np.int64, count=len(counters))
        out[f"prof.{name}.keys"] = np.fromiter((k for k, _ in pairs), dtype=np.int64, count=len(pairs))
        if name in COUNTERS:
            out[f"prof.{name}.values"] = np.fromiter((v for _, v in pairs), dtype=np.int64, count=len(pairs))
        else:
            out[f"prof.{name}.values"] = np.fromiter((v for _, (v, _) in pairs), dtype=np.float64, count=len(pairs))
            out[f"prof.{name}.ts"] = np.fromiter((t for _, (_, t) in pairs), dtype=np.float64, count=len(pairs))
        out[f"prof.{name}.names.data"], out[f"prof.{name}.names.offsets"] = pack(keys.ids)
    searches = [list(p.searches) for p in rows]
    out["prof.searches.lengths"] = np.fromiter(map(len, searches), dtype=np.int64, count=len(searches))
    out["prof.searches.data"], out["prof.searches.offsets"] = pack(q for s in searches for q in s)
    if backing is not None and len(backing):
        _append_rest(out, *backing.columns_of_rest())
    return out


def _append_rest(out: Arrays, rest: Arrays, owners: np.ndarray) -> None:
    out["prof.owners"] = np.concatenate([out["prof.owners"], owners])
    for name, column in rest.items():
        if name.endswith(".offsets"):  # string offsets continue after the built ones'
            out[name] = np.concatenate([out[name], column[1:] + out[name][-1]])
        else:
            out[name] = np.concatenate([out[name], column]) if out[name].size or column.size else out[name]
