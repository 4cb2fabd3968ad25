"""Find users and items by id or title: prefix matches first, then substring matches, bounded.

A linear scan over ids held in memory (fast enough for an operator's search box up to a few
hundred thousand ids). When user ids are pseudonymised only an exact user id can be found."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pulserec.engine import Engine
from pulserec.events import SESSION_PREFIX


@dataclass(frozen=True)
class SearchResults:
    query: str
    users: list[dict[str, Any]]
    items: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "users": self.users, "items": self.items}


def rank_matches(query: str, candidates: Iterable[tuple[int, str]], limit: int) -> list[int]:
    """Keys of candidates whose text contains `query` (case-insensitive): prefix matches, then others.

    Within each group the order of `candidates` is kept; at most `limit` keys are returned."""
    needle = query.casefold()
    prefix: list[int] = []
    inner: list[int] = []
    for key, text in candidates:
        found = text.casefold().find(needle)
        if found == 0:
            prefix.append(key)
            if len(prefix) >= limit:
                break
        elif found > 0 and len(inner) < limit:
            inner.append(key)
    return (prefix + inner)[:limit]


def search(engine: Engine, query: str, limit: int = 10, users: bool = True, items: bool = True) -> SearchResults:
    return SearchResults(
        query=query,
        users=_users(engine, query, limit) if users else [],
        items=_items(engine, query, limit) if items else [],
    )


def _users(engine: Engine, query: str, limit: int) -> list[dict[str, Any]]:
    state = engine.state
    if engine.pseudonym is not None:  # stored keys are hashes: only an exact id can be looked up
        with engine.lock:
            owner = state.owners.get(engine.user_key(query))
            profile = state.profiles.get(owner) if owner is not None else None
            return [{"user_id": query, "event_count": profile.event_count}] if profile else []
    with engine.lock:
        ids = list(state.owners.ids)
    # An owner without a profile was deleted (or a session merged into a user): its id keeps its
    # slot in the index, but it must not be found.
    # The profile is looked up only for ids that match (with a Redis state it is a round trip).
    profiles, needle = state.profiles, query.casefold()
    hits = rank_matches(query, ((i, uid) for i, uid in enumerate(ids) if needle in uid.casefold()
                                and not uid.startswith(SESSION_PREFIX) and profiles.get(i) is not None), limit)
    return [{"user_id": ids[owner], "event_count": profiles.get(owner).event_count} for owner in hits]


def _items(engine: Engine, query: str, limit: int) -> list[dict[str, Any]]:
    catalog = engine.state.catalog
    with engine.lock:
        records = list(catalog.records())
    by_id = rank_matches(query, ((i, r.item_id) for i, r in enumerate(records)), limit)
    by_title = rank_matches(query, ((i, r.title) for i, r in enumerate(records) if r.title), limit)
    picks = list(dict.fromkeys(by_id + by_title))[:limit]
    return [{"item_id": records[i].item_id, "title": records[i].title, "category": records[i].category} for i in picks]
