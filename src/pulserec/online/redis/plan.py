"""A change to the Redis state, assembled in Python and applied by the COMMIT script at once.

The script first checks every precondition (event ids not yet applied, owner versions and the
trending landmark unchanged since they were read, no owner id unmapped since the plan's cached
owner indices were read) and only then writes, so a change is all or
nothing, and a concurrent writer makes it answer 'conflict' (the caller re-reads and retries)
or 'dup' (the event was applied meanwhile)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from pulserec.online.redis.codec import encode_float, encode_pairs
from pulserec.online.redis.ids import FORGOTTEN_ID

_SECTIONS = ("vectors", "rows", "history", "seen")
#: COMMIT rewrites a vector whole (one GET and one SET) rather than in place (a GETRANGE and a
#: SETRANGE per entry) when a change has at least one entry per this many items: the rewrite
#: costs ~4 ns an item, the in-place update ~1.5 us an entry.
VECTOR_REWRITE = 64


class CommitPlan:
    """Preconditions and writes of one COMMIT call, encoded as a JSON header + binary blobs."""

    def __init__(self, history_bytes: int, compact_bytes: int, state_id: str = "", interest_rate: float = 0.0,
                 drops: int = 0) -> None:
        self.header: dict[str, Any] = {
            "state_id": state_id, "drops": drops, "fresh": 0, "done": 0, "versions": [], "vectors": [], "rows": [], "row_n": [],
            "history": [], "seen": [], "profiles": [], "forget": [], "drop": [], "tombstone": FORGOTTEN_ID,
            "applied": 0, "last_seq": 0, "now": "",
            "history_bytes": history_bytes, "compact_bytes": compact_bytes, "rate": interest_rate,
            "vector_rewrite": VECTOR_REWRITE,
        }
        self._ids: list[str] = []
        self._done: list[str] = []
        self._rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # see append_rows
        # Blobs per section, sent in the order the script reads them.
        self._blobs: dict[str, list[bytes]] = {name: [] for name in _SECTIONS}

    # -- preconditions -----------------------------------------------------------------------
    def mark_applied(self, event_ids: Iterable[str]) -> None:
        """These events must not be applied yet; the commit records them as applied."""
        self._ids.extend(event_ids)

    def require_applied(self, event_ids: Iterable[str]) -> None:
        """These events must already be applied (subtracting them is then exact)."""
        self._done.extend(event_ids)

    def check_versions(self, owners: Iterable[int], versions: Iterable[int]) -> None:
        """Owners whose history/profile were read at these versions (each is bumped)."""
        self.header["versions"].extend([int(o), int(v)] for o, v in zip(owners, versions))

    def move_landmark(self, old: float | None, new: float, factor: float) -> None:
        """Trending deltas are relative to landmark `new`; stored values rescale by `factor`
        if the landmark moves. Fails if another writer moved it after `old` was read."""
        self.header["landmark"] = [encode_float(old), encode_float(new), encode_float(factor)]

    # -- writes ------------------------------------------------------------------------------
    def add_to_vector(self, name: str, items: np.ndarray, deltas: np.ndarray, clamp: bool = False) -> None:
        """vec:<name>[item] += delta (then max(., 0) when `clamp`)."""
        self._vector(name, 1 if clamp else 0, items, deltas)

    def raise_vector(self, name: str, items: np.ndarray, values: np.ndarray) -> None:
        """vec:<name>[item] = max(vec:<name>[item], value) (0 where never written)."""
        self._vector(name, 2, items, values)

    def _vector(self, name: str, mode: int, items: np.ndarray, values: np.ndarray) -> None:
        if len(items):
            self.header["vectors"].append([name, mode])
            self._blobs["vectors"].append(encode_pairs(items, values))

    def append_row(self, item: int, others: np.ndarray, weights: np.ndarray) -> None:
        """Append (other, weight) entries to the co-occurrence row of `item`."""
        self.append_rows(np.array([item]), np.array([len(others)]), np.asarray(others), np.asarray(weights))

    def append_rows(self, items: np.ndarray, counts: np.ndarray, others: np.ndarray, weights: np.ndarray) -> None:
        """Many rows at once: row `items[i]` gets the next `counts[i]` of the (others, weights)
        entries. All rows of a plan travel as one string (a blob per row cost ~5 us of encoding
        and argument packing each; a batch of 2,000 MovieLens events appends to ~1,000 rows)."""
        self._rows.append((items, counts, others, weights))

    def append_history(self, owner: int, touches: bytes) -> None:
        self.header["history"].append(int(owner))
        self._blobs["history"].append(touches)

    def append_seen(self, owner: int, items: bytes) -> None:
        self.header["seen"].append(int(owner))
        self._blobs["seen"].append(items)

    def merge_profiles(self, deltas: list[dict[str, Any]]) -> None:
        """Merge what events add to owners' profiles (`profile_deltas`; `interest_rate` decays them)."""
        self.header["profiles"].extend(deltas)

    def forget_owner(self, owner: int) -> None:
        """Delete the owner's history, seen items and profile (before this plan's own writes to them)."""
        self.header["forget"].append(int(owner))

    def drop_id(self, owner_key: str) -> None:
        """Unmap the owner's id (a deleted user, a merged session): Redis keeps no copy of it."""
        self.header["drop"].append(owner_key)

    def count(self, applied: int, last_seq: int = 0, now: float | None = None) -> None:
        """Event counter delta, the highest seq applied and the event-time clock."""
        self.header["applied"] += int(applied)
        self.header["last_seq"] = max(self.header["last_seq"], int(last_seq))
        if now is not None:
            self.header["now"] = encode_float(now)

    def args(self, prefix: str) -> list[Any]:
        if self._rows:
            items, counts, others, weights = (np.concatenate(part) for part in zip(*self._rows))
            self.header["rows"], self.header["row_n"] = items.tolist(), counts.tolist()
            self._blobs["rows"] = [encode_pairs(others, weights)]
        self.header["fresh"], self.header["done"] = len(self._ids), len(self._done)
        header = json.dumps(self.header, separators=(",", ":"), ensure_ascii=False)  # UTF-8 as it is: Lua keeps bytes
        return [prefix, header, *self._ids, *self._done,
                *(blob for name in _SECTIONS for blob in self._blobs[name])]
