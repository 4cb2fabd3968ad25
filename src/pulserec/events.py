"""The internal, validated event: what the store persists and the online state applies."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

#: Prefix of the internal owner key of an anonymous session (ids cannot contain control chars).
SESSION_PREFIX = "\x1fsession:"


class Event(NamedTuple):
    event_id: str
    user_id: str | None
    item_id: str | None
    type: str
    ts: float
    value: float | None = None
    session_id: str | None = None
    query: str | None = None
    context: dict[str, Any] | None = None
    rec_id: str | None = None
    #: Seconds the item's page was visible (issue 14.2; scales the weight, see event_weights.py).
    dwell_seconds: float | None = None

    @property
    def owner(self) -> str:
        """Whose history this event extends: the user, else the anonymous session."""
        return self.user_id if self.user_id else SESSION_PREFIX + str(self.session_id)

    def row(self) -> tuple[Any, ...]:
        """Values in :data:`pulserec.store.EVENT_COLUMNS` order."""
        ctx = json.dumps(self.context, separators=(",", ":")) if self.context else None
        return (self.event_id, self.user_id, self.item_id, self.type, self.ts, self.value,
                self.session_id, self.query, ctx, self.rec_id, self.dwell_seconds)


def owner_keys(frame: pd.DataFrame) -> np.ndarray:
    """Vectorised :attr:`Event.owner` for a frame of stored events."""
    users = frame["user_id"].to_numpy(dtype=object)
    named = pd.notna(users)
    named[named] = users[named] != ""
    anonymous = ~named
    owners = users.copy()
    if anonymous.any():  # a string built only for sessions' rows (pandas' Series "+" cost ~3 us an event)
        owners[anonymous] = [SESSION_PREFIX + str(s) for s in frame["session_id"].to_numpy(dtype=object)[anonymous]]
    return owners


def events_from_frame(frame: pd.DataFrame) -> list[Event]:
    """Stored rows (EVENT_COLUMNS, context as JSON text or as a dict) back into events."""
    out = []
    for r in frame.itertuples(index=False):
        ctx = r.context
        out.append(
            Event(
                event_id=r.event_id,
                user_id=_none(r.user_id),
                item_id=_none(r.item_id),
                type=r.type,
                ts=float(r.ts),
                value=None if r.value is None or pd.isna(r.value) else float(r.value),
                session_id=_none(r.session_id),
                query=_none(r.query),
                context=json.loads(ctx) if isinstance(ctx, str) and ctx else (ctx if isinstance(ctx, dict) else None),
                rec_id=_none(r.rec_id),
                dwell_seconds=_number(getattr(r, "dwell_seconds", None)),
            )
        )
    return out


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _none(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value


def event_from_row(row: tuple[Any, ...]) -> Event:
    """A stored row (values in EVENT_COLUMNS order, context as JSON text) back into an event."""
    event_id, user_id, item_id, type_, ts, value, session_id, query, ctx, rec_id, dwell = row
    return Event(event_id, user_id, item_id, type_, float(ts), None if value is None else float(value),
                 session_id, query, json.loads(ctx) if ctx else None, rec_id, None if dwell is None else float(dwell))
