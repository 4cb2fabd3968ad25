"""Owner indices shared through Redis (a hash id -> index and a list index -> id).

Every process interns through the same Lua script, so all agree on the dense indices. A
mapping never changes once made (until a reset, which bumps the epoch and clears the cache),
except that a deleted owner's id is dropped (`drop`), so lookups are cached in-process."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState


#: What a deleted owner's slot in the id list holds instead of their id (ids never hold control
#: characters, so it cannot clash); the index itself stays, as every per-owner key is by index.
FORGOTTEN_ID = "\x00forgotten:"

#: drop(owners hash, id list; owner key, tombstone prefix): unmap the owner and overwrite its slot.
_DROP = """
local idx = redis.call('HGET', KEYS[1], ARGV[1])
if idx then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('LSET', KEYS[2], tonumber(idx), ARGV[2] .. idx)
end
return idx
"""


class RedisIdIndex:
    """The `IdIndex` interface over owners:<...> keys."""

    def __init__(self, state: RedisState) -> None:
        self.state = state
        self._index: dict[str, int] = {}
        self._ids: dict[int, str] = {}

    def clear_cache(self) -> None:
        self._index.clear()
        self._ids.clear()

    def _remember(self, value: str, idx: int) -> None:
        self._index[value] = idx
        self._ids[idx] = value

    def get(self, value: str) -> int | None:
        idx = self._index.get(value)
        if idx is not None:
            return idx
        view = self.state.current_view()
        if view is not None and view.owner_key == value:
            found = view.owner
        else:
            raw = self.state.client.hget(self.state.keys.owners, value)
            found = None if raw is None else int(raw)
        if found is not None:
            self._remember(value, found)
        return found

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and self.get(value) is not None

    def id_of(self, idx: int) -> str:
        value = self._ids.get(idx)
        if value is None:
            raw = self.state.client.lindex(self.state.keys.owners_ids, idx)
            if raw is None:
                raise IndexError(idx)
            value = raw.decode()
            self._remember(value, idx)
        return value

    def ids_of(self, indices: Iterable[int]) -> list[str]:
        return [self.id_of(i) for i in indices]

    def __len__(self) -> int:
        return int(self.state.client.llen(self.state.keys.owners_ids))

    @property
    def ids(self) -> list[str]:
        return [v.decode() for v in self.state.client.lrange(self.state.keys.owners_ids, 0, -1)]

    def add_many(self, values: Iterable[str]) -> np.ndarray:
        """Intern many owners (one script call for the distinct ones); returns int64 indices."""
        values = list(values)
        distinct = [v for v in dict.fromkeys(values) if v not in self._index]
        if distinct:
            indices = self.state.scripts.intern_many(args=[self.state.keys.prefix, "owners", len(distinct), *distinct])
            for value, idx in zip(distinct, indices):
                self._remember(value, int(idx))
        return np.fromiter((self._index[v] for v in values), dtype=np.int64, count=len(values))

    def add(self, value: str) -> int:
        return int(self.add_many([value])[0])

    def drop(self, value: str) -> None:
        """Forget a deleted owner's id (right to be forgotten: Redis keeps no copy of it). If they
        come back they are interned anew. Other processes may still hold the old mapping in
        their cache until their next epoch (reset) or restart."""
        idx = self.state.client.eval(_DROP, 2, self.state.keys.owners, self.state.keys.owners_ids, value, FORGOTTEN_ID)
        if idx is not None:
            self._ids.pop(int(idx), None)
        self._index.pop(value, None)
