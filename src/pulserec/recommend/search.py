"""Find users and items by id or title: prefix matches first, then substring matches, bounded.

A linear scan over ids held in memory (fast enough for an operator's search box up to a few
hundred thousand ids). When user ids are pseudonymised only an exact user id can be found."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pulserec.events import SESSION_PREFIX
from pulserec.online.base import State


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


def search(state: State, query: str, limit: int = 10, users: bool = True, items: bool = True,
           exact_user: str | None = None) -> SearchResults:
    """Users and items matching `query` in `state` (read inside one read scope: `Engine.read`).
    `exact_user`: the stored key of `query` when user ids are pseudonymised (then only an exact
    user id can be found)."""
    return SearchResults(
        query=query,
        users=(_users(state, query, limit) if exact_user is None else _exact_user(state, query, exact_user)) if users else [],
        items=_items(state, query, limit) if items else [],
    )


def _exact_user(state: State, query: str, key: str) -> list[dict[str, Any]]:
    owner = state.owners.get(key)
    profile = state.profiles.get(owner) if owner is not None else None
    return [{"user_id": query, "event_count": profile.event_count}] if profile else []


def _users(state: State, query: str, limit: int) -> list[dict[str, Any]]:
    ids = list(state.owners.ids)
    # An owner without a profile was deleted (or a session merged into a user): its id keeps its
    # slot in the index, but it must not be found.
    # The profile is looked up only for ids that match (with a Redis state it is a round trip).
    profiles, needle = state.profiles, query.casefold()
    hits = rank_matches(query, ((i, uid) for i, uid in enumerate(ids) if needle in uid.casefold()
                                and not uid.startswith(SESSION_PREFIX) and i in profiles), limit)
    return [{"user_id": ids[owner], "event_count": profiles.get(owner).event_count} for owner in hits]


def _items(state: State, query: str, limit: int) -> list[dict[str, Any]]:
    records = list(state.catalog.records())
    by_id = rank_matches(query, ((i, r.item_id) for i, r in enumerate(records)), limit)
    by_title = rank_matches(query, ((i, r.title) for i, r in enumerate(records) if r.title), limit)
    picks = list(dict.fromkeys(by_id + by_title))[:limit]
    return [{"item_id": records[i].item_id, "title": records[i].title, "category": records[i].category} for i in picks]
