"""Per-owner recent touches and seen items in Redis (hist:<owner>, seen:<owner>).

A history is a string of fixed-size touches that COMMIT appends to and trims to the last
`history_len`; seen items are appended int32s (repeats allowed, read as a set)."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import numpy as np

from pulserec.online.history import Touch, owner_tails
from pulserec.online.redis.codec import decode_seen, encode_seen

if TYPE_CHECKING:
    from pulserec.online.redis.plan import CommitPlan
    from pulserec.online.redis.state import RedisState


class RedisHistories:
    """The `Histories` read interface (recent, seen) served from the request's snapshot."""

    def __init__(self, state: RedisState, max_len: int) -> None:
        self.state = state
        self.max_len = max_len

    def recent(self, owner: int | None) -> deque[Touch]:
        if owner is None:
            return deque()
        view = self.state.current_view()
        if view is not None and view.owner == owner:
            return deque(view.history)
        return deque(self.state.codes.decode_touches(self.state.client.get(self.state.keys.history(owner))))

    def recent_columns(self, owner: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`recent` as columns (`online.base.RecentColumns`: what the query is built from, with
        no `Touch` per event), kept with the request's view: a view reused while nothing
        changed (`pushes`) decodes its history once."""
        codes = self.state.codes
        if owner is None:
            return codes.touch_columns(None)
        view = self.state.current_view()
        if view is not None and view.owner == owner:
            if view.columns is None:
                view.columns = codes.touch_columns(view.history_blob)
                for column in view.columns:
                    column.flags.writeable = False  # shared by every request the view serves
            return view.columns  # type: ignore[return-value]
        return codes.touch_columns(self.state.client.get(self.state.keys.history(owner)))

    def seen(self, owner: int | None) -> set[int]:
        if owner is None:
            return set()
        view = self.state.current_view()
        if view is not None and view.owner == owner:
            return view.seen
        return decode_seen(self.state.client.get(self.state.keys.seen(owner)))

    @property
    def owner_counts(self) -> np.ndarray:
        """Owners who touched each item (vec:users, kept by COMMIT where seen sets change)."""
        return self.state.popularity.counts("users")

    # -- writes ------------------------------------------------------------------------------
    def plan_log(self, plan: CommitPlan, owners: np.ndarray, items: np.ndarray, weights: np.ndarray,
                 ts: np.ndarray, types: np.ndarray) -> None:
        """Append each owner's touches of a log (arrival order); COMMIT keeps the last max_len."""
        encode = self.state.codes.encode_touches
        for owner, touched, (t_items, t_weights, t_ts, t_types) in owner_tails(owners, items, weights, ts, types, self.max_len):
            plan.append_history(owner, encode(t_items, t_weights, t_ts, list(t_types)))
            plan.append_seen(owner, encode_seen(dict.fromkeys(touched.tolist())))
