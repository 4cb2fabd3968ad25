"""Read-only views over the online state (a user's profile, an item, the statistics), built under
the engine's lock in one read scope (`Engine.profile`, `item`, `stats`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pulserec.models.query import recent_of, touch_columns
from pulserec.online.base import State


#: The profile shows this many of the latest touches, newest first.
RECENT_SHOWN = 20


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
    items, _, times, types = touch_columns(recent_of(state.histories, owner))
    catalog = state.catalog
    out["recent_items"] = [  # newest first
        {"item_id": catalog.item_ids.id_of(item), "title": catalog.record(item).title, "type": kind, "ts": ts}
        for item, kind, ts in zip(*(column[-RECENT_SHOWN:][::-1].tolist() for column in (items, types, times)))
    ]
    out["session"] = session_of(state, items, times, session_gap)
    return out


def session_of(state: State, items: np.ndarray, times: np.ndarray, gap: float) -> dict[str, Any]:
    """The current session: the trailing events with no gap longer than `gap` seconds (a gap
    that does not compare, NaN, ends it too)."""
    if not len(items):
        return {"events": 0, "items": [], "started": None}
    breaks = np.flatnonzero(~(np.diff(times) <= gap))
    start = int(breaks[-1]) + 1 if len(breaks) else 0
    return {"events": len(items) - start, "items": state.catalog.item_ids.ids_of(items[start:].tolist()),
            "started": float(times[start])}


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
