"""Read-only views over the online state (a user's profile, an item, the statistics), built under
the engine's lock in one read scope (`Engine.profile`, `item`, `stats`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pulserec.online.base import State
from pulserec.online.history import Touch


def profile_view(state: State, user_id: str, key: str, stored: dict[str, Any] | None, clock: float,
                 session_gap: float) -> dict[str, Any] | None:
    """The profile of `user_id`, stored as `key` (None: neither events nor a user record)."""
    owner = state.owners.get(key)
    profile = state.profiles.get(owner) if owner is not None else None
    if profile is None and stored is None:
        return None
    out: dict[str, Any] = profile.to_dict(clock) if profile else {"event_count": 0}
    out["user_id"] = user_id
    out["attrs"] = stored["attrs"] if stored else {}
    recent = list(state.histories.recent(owner))
    catalog = state.catalog
    out["recent_items"] = [
        {"item_id": catalog.item_ids.id_of(t.item), "title": catalog.record(t.item).title, "type": t.type, "ts": t.ts}
        for t in reversed(recent[-20:])
    ]
    out["session"] = session_of(state, recent, session_gap)
    return out


def session_of(state: State, recent: Sequence[Touch], gap: float) -> dict[str, Any]:
    """The current session: the trailing events with no gap longer than `gap` seconds."""
    if not recent:
        return {"events": 0, "items": [], "started": None}
    start = len(recent) - 1
    while start > 0 and recent[start].ts - recent[start - 1].ts <= gap:
        start -= 1
    session = recent[start:]
    ids = state.catalog.item_ids
    return {"events": len(session), "items": [ids.id_of(t.item) for t in session], "started": session[0].ts}


def item_view(state: State, item_id: str) -> dict[str, Any] | None:
    idx = state.catalog.item_ids.get(item_id)
    if idx is None:
        return None
    record = state.catalog.record(idx)
    pop = state.popularity
    return {
        "item_id": record.item_id,
        "title": record.title,
        "description": record.description,
        "category": record.category,
        "tags": list(record.tags),
        "price": record.price,
        "active": record.active,
        "created_at": record.created_ts,
        "attrs": record.attrs,
        "events": int(pop.events[idx]) if idx < len(pop.events) else 0,
        "popularity": float(pop.total[idx]) if idx < len(pop.total) else 0.0,
    }
