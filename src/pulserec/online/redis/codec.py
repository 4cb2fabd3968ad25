"""Binary and JSON formats of the values kept in Redis.

Hot data is little-endian binary so that reads are `np.frombuffer` (no parsing) and Lua can
update it with `struct`:

* dense per-item vectors (popularity, trending, degree): float64 at offset 8 * item;
* co-occurrence rows: (int32 other item, float64 weight) entries, appended per event; an item
  may repeat until the row is compacted (readers accumulate with `np.bincount`, as for the
  in-memory delta);
* histories: fixed-size touches (int32 item, float64 weight, float64 ts, uint8 event type);
* seen sets: int32 items (repeats allowed).

Item records are JSON; profiles are hashes of fields (see `profiles.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from pulserec.records import ItemRecord
from pulserec.online.history import Touch

PAIR = np.dtype([("item", "<i4"), ("weight", "<f8")])
TOUCH = np.dtype([("item", "<i4"), ("weight", "<f8"), ("ts", "<f8"), ("type", "u1")])
VECTOR = np.dtype("<f8")
SEEN = np.dtype("<i4")

_EMPTY_VECTOR = np.zeros(0, dtype=np.float64)


# -- co-occurrence rows and sparse vector updates -------------------------------------------
def encode_pairs(items: np.ndarray | Sequence[int], weights: np.ndarray | Sequence[float]) -> bytes:
    out = np.empty(len(items), dtype=PAIR)
    out["item"] = items
    out["weight"] = weights
    return out.tobytes()


def decode_pairs(blob: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    """(items int32, weights float64) of a row or update blob."""
    if not blob:
        return np.empty(0, dtype=np.int32), _EMPTY_VECTOR
    pairs = np.frombuffer(blob, dtype=PAIR)
    return pairs["item"].astype(np.int32), pairs["weight"].astype(np.float64)


def decode_vector(blob: bytes | None, n: int) -> np.ndarray:
    """A dense vector padded with zeros (or cut) to length n (a fresh, writable array)."""
    out = np.zeros(n, dtype=np.float64)
    if blob:
        values = np.frombuffer(blob, dtype=VECTOR)[:n]
        out[: len(values)] = values
    return out


# -- histories -------------------------------------------------------------------------------
class TypeCodes:
    """Event type names <-> the uint8 codes stored in histories (sorted names, fixed by settings)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        if len(self.names) > 255:
            raise ValueError("at most 255 event types can be stored in Redis histories")
        self.codes = {name: code for code, name in enumerate(self.names)}

    def encode_touches(self, items: np.ndarray, weights: np.ndarray, ts: np.ndarray, types: Sequence[str]) -> bytes:
        out = np.empty(len(items), dtype=TOUCH)
        out["item"], out["weight"], out["ts"] = items, weights, ts
        out["type"] = [self.codes[t] for t in types]
        return out.tobytes()

    def decode_touches(self, blob: bytes | None) -> list[Touch]:
        if not blob:
            return []
        rows = np.frombuffer(blob, dtype=TOUCH)
        names = self.names
        return [
            Touch(i, w, t, names[k])
            for i, w, t, k in zip(rows["item"].tolist(), rows["weight"].tolist(), rows["ts"].tolist(), rows["type"].tolist())
        ]


    def touch_columns(self, blob: bytes | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`decode_touches` as columns (items, weights, times, type names; `RecentColumns`),
        with no `Touch` per event: the same values (float64 as stored)."""
        rows = np.frombuffer(blob or b"", dtype=TOUCH)
        names = np.array(self.names, dtype=object)
        return rows["item"].astype(np.int64), rows["weight"].astype(np.float64), rows["ts"].astype(np.float64), \
            names[rows["type"]] if len(names) else np.empty(0, dtype=object)


def decode_seen(blob: bytes | None) -> set[int]:
    return set(np.frombuffer(blob, dtype=SEEN).tolist()) if blob else set()


def encode_seen(items: Iterable[int]) -> bytes:
    return np.fromiter(items, dtype=SEEN).tobytes()


# -- item records ----------------------------------------------------------------------------
def encode_record(record: ItemRecord) -> bytes:
    """A record without `created_ts` (kept apart so that upserts without one keep the old)."""
    values = asdict(record)
    values.pop("created_ts")
    return json.dumps(values, separators=(",", ":")).encode()


def decode_record(blob: bytes, created: bytes | None) -> ItemRecord:
    values: dict[str, Any] = json.loads(blob)
    values["tags"] = tuple(values.get("tags") or ())
    return ItemRecord(**values, created_ts=float(created) if created else None)


def encode_float(value: float | None) -> str:
    """Exact text for a float (Lua would round numbers to 14 digits, so floats travel as text)."""
    return "" if value is None else repr(float(value))
