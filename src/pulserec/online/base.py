"""The online state, declared once: what the engine, the service and the models may use of it.

Two implementations: `online/state.py` (in memory, one process) and `online/redis/state.py`
(shared by every process on one Redis namespace); `make_state` picks one. The components are
declared as small read protocols, each with what the service, the models and the engine read;
writes go through the state (`apply`, `apply_frame`, `forget`, `absorb`), never a component,
so each backend keeps its own write path (arrays here, one atomic Redis script there).
`tests/online/test_state_contract.py` runs one suite against both."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from pulserec.events import Event
from pulserec.records import ItemRecord

if TYPE_CHECKING:
    from collections import deque

    from pulserec.config import Settings
    from pulserec.online.history import Touch
    from pulserec.profiles.profile import UserProfile
    from pulserec.store import SQLiteStore


class OwnerIndex(Protocol):
    """Owner (user or session) keys <-> dense indices; also the catalogue's item ids."""

    def __len__(self) -> int: ...
    def __contains__(self, value: object) -> bool: ...
    def get(self, value: str) -> int | None: ...
    def add(self, value: str) -> int: ...
    def id_of(self, idx: int) -> str: ...
    def ids_of(self, indices: Iterable[int]) -> list[str]: ...
    @property
    def ids(self) -> list[str]: ...


class ItemCatalog(Protocol):
    """Item metadata aligned with item indices, and the masks the filters use."""

    @property
    def item_ids(self) -> OwnerIndex: ...
    def __len__(self) -> int: ...
    def record(self, idx: int) -> ItemRecord: ...
    def get(self, item_id: str) -> ItemRecord | None: ...
    def records(self) -> list[ItemRecord]: ...
    def category_of(self, idx: int) -> str | None: ...
    def title_of(self, idx: int) -> str: ...
    def active_mask(self) -> np.ndarray: ...
    def servable_mask(self, serve_unknown: bool = False) -> np.ndarray: ...
    def category_mask(self, category: str) -> np.ndarray: ...
    def price_array(self) -> np.ndarray: ...
    def created_array(self) -> np.ndarray: ...
    def category_codes(self) -> np.ndarray: ...
    @property
    def categories(self) -> OwnerIndex: ...
    @property
    def revision(self) -> int:
        """Changes whenever an item's metadata changes (filter caches are keyed on it)."""
        ...
    def changed_since(self, revision: int) -> np.ndarray | None: ...
    def upsert(self, record: ItemRecord) -> int: ...
    def upsert_many(self, records: list[ItemRecord]) -> None: ...


class PopularityCounts(Protocol):
    """All-time and trending (forward-decayed) weight per item."""

    @property
    def now(self) -> float: ...
    @property
    def total(self) -> np.ndarray: ...
    @property
    def events(self) -> np.ndarray: ...
    def trending_scores(self, n: int, at: float | None = None) -> np.ndarray:
        """Trending weights read at time `at` (default: the newest event; see decay.read_clock)."""
        ...
    def all_time(self, n: int) -> np.ndarray: ...


class CoOccurrenceRows(Protocol):
    """Item-item co-occurrence rows (item-kNN reads them)."""

    @property
    def nnz(self) -> int: ...
    def has_item(self, item: int) -> bool: ...
    def row(self, item: int) -> tuple[np.ndarray, np.ndarray]: ...
    def dense_row(self, item: int, n_items: int) -> np.ndarray: ...
    def scoring_row(self, item: int) -> tuple[np.ndarray, np.ndarray]: ...
    def scoring_parts(self, item: int) -> list[tuple[np.ndarray, np.ndarray]]: ...
    def similar_row(self, item: int) -> tuple[np.ndarray, np.ndarray]: ...
    def similar_rows(self, items: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
    @property
    def revision(self) -> Hashable:
        """A value that differs whenever rows, degrees or the owners per item (min_support) may
        have changed since it was read (what a per-user cache of similar rows is keyed by)."""
        ...


class HistoryLookup(Protocol):
    """Each owner's recent touches (the query) and seen items (the filter)."""

    def recent(self, owner: int | None) -> deque[Touch]: ...
    def seen(self, owner: int | None) -> set[int]: ...
    @property
    def owner_counts(self) -> np.ndarray:
        """How many owners have touched each item index (item-kNN's minimum support)."""
        ...


@runtime_checkable
class RecentColumns(Protocol):
    """Optional for a :class:`HistoryLookup`: `recent` as columns (items, weights, times, type
    names) without a `Touch` per event (the in-memory histories)."""

    def recent_columns(self, owner: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


class ProfileLookup(Protocol):
    def __len__(self) -> int: ...
    def __contains__(self, owner: int) -> bool: ...
    def get(self, owner: int) -> UserProfile | None: ...
    def search_mark(self, owner: int) -> tuple[str, float, int] | None:
        """(latest query, its time, events since) as `UserProfile.search_mark`, or None."""
        ...


class State(Protocol):
    """The online state: everything each accepted event updates before it is acknowledged."""

    #: True when other processes read and write the same state (then the log decides, not it).
    shared: ClassVar[bool]
    settings: Settings
    catalog: ItemCatalog
    owners: OwnerIndex
    popularity: PopularityCounts
    cooc: CoOccurrenceRows
    histories: HistoryLookup
    profiles: ProfileLookup

    @property
    def applied(self) -> int:
        """Events applied so far."""
        ...

    @property
    def now(self) -> float:
        """Event-time clock: the latest timestamp applied."""
        ...

    @property
    def deletions(self) -> int:
        """How many owner ids (deleted users, merged sessions) any process has unmapped, as of the
        last read: when it moves, a process's own copies of deleted users go (Engine.deleted_elsewhere)."""
        ...

    def restore(self, store: SQLiteStore, progress: Callable[[int], None] | None = None) -> None:
        """Bring the state up to the stored log (at start)."""
        ...

    def close(self) -> None: ...

    def reading(self, owner_key: str | None = None) -> AbstractContextManager[None]:
        """The scope of one read request (a shared state reads one snapshot in it)."""
        ...

    def apply(self, event: Event, seq: int = 0) -> bool:
        """Apply one stored event; False if it had been applied already."""
        ...

    def apply_many(self, batch: list[tuple[Event, int]]) -> list[bool]: ...

    def apply_stored(self, fresh: list[tuple[Event, int]], store: SQLiteStore) -> None:
        """Apply events the store has just accepted (`store`: where a shared state catches up
        from when it missed some)."""
        ...

    def apply_frame(self, frame: pd.DataFrame) -> None:
        """Apply stored events (a frame in arrival order) in bulk."""
        ...

    def end_bulk(self) -> None:
        """The last frame of a bulk load (import, replay) was applied: settle what the bulk path
        left for later (the in-memory state folds its co-occurrence)."""
        ...

    def forget(self, owner_key: str, events: pd.DataFrame) -> None:
        """Remove every trace of one owner, given all of their stored events."""
        ...

    def absorb(self, user_key: str, session_key: str, user_events: pd.DataFrame, session_events: pd.DataFrame,
               reload: Callable[[], tuple[pd.DataFrame, pd.DataFrame]] | None = None) -> None:
        """A session logged in: its events become the user's, as if they had been all along."""
        ...


class SharedState(State, Protocol):
    """A state that lives outside this process: it is rebuilt in place, not swapped."""

    def rebuild(self, store: SQLiteStore, progress: Callable[[int], None] | None = None) -> None: ...
