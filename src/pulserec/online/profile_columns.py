"""Profiles in a snapshot: the `ProfileTable`'s columns as they are, and back.

The table already keeps every profile in arrays, so a snapshot writes them (sparse tables
merged first) and a start loads them without building anything per user."""

from __future__ import annotations

import numpy as np

from pulserec.ids import IdIndex
from pulserec.online.strings import pack, unpack
from pulserec.profiles.table import DENSE, ProfileTable

Arrays = dict[str, np.ndarray]


def profile_arrays(table: ProfileTable, n_owners: int) -> Arrays:
    """Columns of every owner slot up to `n_owners` (an empty slot holds no data)."""
    table.ensure(n_owners)
    out: Arrays = {"prof.exists": table.exists[:n_owners], "prof.counts": table.counts[:n_owners],
                   "prof.searches.next": np.array([table._searches], dtype=np.int64)}
    for name in DENSE:
        out[f"prof.{name}"] = table.dense[name][:n_owners]
    out["prof.types.data"], out["prof.types.offsets"] = pack(table.types.ids)
    for name, keyed in table.keyed.items():
        out[f"prof.{name}.keys"], out[f"prof.{name}.values"], out[f"prof.{name}.ts"] = keyed.arrays()
        out[f"prof.{name}.names.data"], out[f"prof.{name}.names.offsets"] = pack(table.names[name].ids)
    return out


def load_profiles(table: ProfileTable, arrays: Arrays) -> None:
    """Fill an empty table from `profile_arrays`' columns."""
    table.exists = arrays["prof.exists"].astype(bool)
    table.counts = arrays["prof.counts"].astype(np.int32)
    table._searches = int(arrays["prof.searches.next"][0])
    for name in DENSE:
        table.dense[name] = arrays[f"prof.{name}"].copy()
    table.types = IdIndex(unpack(arrays["prof.types.data"], arrays["prof.types.offsets"]))
    for name, keyed in table.keyed.items():
        keyed.load(arrays[f"prof.{name}.keys"], arrays[f"prof.{name}.values"], arrays[f"prof.{name}.ts"])
        table.names[name] = IdIndex(unpack(arrays[f"prof.{name}.names.data"], arrays[f"prof.{name}.names.offsets"]))
    table._live = int(table.exists.sum())
