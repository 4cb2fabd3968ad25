"""Owner indices shared through Redis (a hash id -> index and a list index -> id).

Every process interns through the same Lua script, so all agree on the dense indices. A
mapping never changes once made (until a reset, which bumps the epoch and clears the cache),
except that a deleted user's or a merged session's id is unmapped (COMMIT's `drop`), so lookups
are cached in-process, as of a *generation*: the count of unmapped ids (`meta.drops`) read
before the cached lookups. Every read returns the count, and a cache of an older generation is
dropped; COMMIT refuses ('stale') a plan whose indices came from one. Without it another process
kept mapping a deleted id to its old slot and wrote a returning user's events there, where the
deleting process could neither see nor delete them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pulserec.online.redis.state import RedisState


#: What a deleted owner's slot in the id list holds instead of their id (ids never hold control
#: characters, so it cannot clash); the index itself stays, as every per-owner key is by index.
FORGOTTEN_ID = "\x00forgotten:"

class RedisIdIndex:
    """The `IdIndex` interface over owners:<...> keys."""

    def __init__(self, state: RedisState) -> None:
        self.state = state
        self._index: dict[str, int] = {}
        self._ids: dict[int, str] = {}
        self._generation: int | None = None  # meta.drops when the cached lookups began (None: not read)

    def clear_cache(self, generation: int | None = None) -> None:
        self._index.clear()
        self._ids.clear()
        self._generation = generation

    @property
    def generation(self) -> int:
        """The unmapped-id count the cached indices are valid for (read before the first lookup)."""
        self._pin_generation()
        return self._generation  # type: ignore[return-value]

    def _pin_generation(self) -> None:
        """Before a lookup that fills the cache: know which generation it belongs to."""
        if self._generation is None:
            self._generation = int(self.state.client.hget(self.state.keys.meta, "drops") or 0)

    def check_generation(self, drops: int) -> None:
        """A read saw `drops` ids unmapped so far: a cache of an older generation goes."""
        if self._generation != drops:
            self.clear_cache(drops)

    def _remember(self, value: str, idx: int) -> None:
        self._index[value] = idx
        self._ids[idx] = value

    def get(self, value: str) -> int | None:
        idx = self._index.get(value)
        if idx is not None:
            return idx
        self._pin_generation()
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
            self._pin_generation()
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
            self._pin_generation()
            indices = self.state.scripts.intern_many(args=[self.state.keys.prefix, "owners", len(distinct), *distinct])
            for value, idx in zip(distinct, indices):
                self._remember(value, int(idx))
        return np.fromiter((self._index[v] for v in values), dtype=np.int64, count=len(values))

    def add(self, value: str) -> int:
        return int(self.add_many([value])[0])
