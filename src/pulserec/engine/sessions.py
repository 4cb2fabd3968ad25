"""Merging an anonymous session into its user at login: the session's stored events are claimed
for the user in the log, then the online state absorbs them (docs/architecture.md, "Forgetting a
user exactly": the same subtract-and-add that a deletion uses).

A part of the engine (`engine.sessions`), called under the engine lock by the write path (the
first event naming both a user and a session) and by `Engine.log_in` (the browser SDK's
`identify`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from pulserec.events import SESSION_PREFIX

if TYPE_CHECKING:
    from pulserec.engine.core import Engine


class SessionMerge:
    """The engine's login merge; it reads `engine.state` at every call (a rebuild swaps it)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def log_in(self, user_key: str, session_id: str) -> None:
        """Merge the session `session_id` (stored id) into the user `user_key` when it holds
        events; under the engine lock."""
        engine = self.engine
        state, store = engine.state, engine.store
        session_key = SESSION_PREFIX + session_id
        if state.shared:  # it may lag the log (stream mode, other processes): the log decides
            if not store.has_anonymous_events(session_id):
                return
        else:
            owner = state.owners.get(session_key)
            if owner is None or not state.histories.recent(owner) and owner not in state.profiles:
                return
        claimed = store.claim_session(session_id, user_key)
        if claimed.empty:
            return
        user_events = store.user_events(user_key)
        user_events = user_events[~user_events["seq"].isin(claimed["seq"])]
        state.absorb(user_key, session_key, user_events, claimed, reload=self.merge_logs(user_key, session_id, claimed))
        engine.checkpoints.log_rewritten()
        engine.counters["sessions.merged"] += 1

    def merge_logs(self, user_key: str, session_id: str,
                   claimed: pd.DataFrame) -> Callable[[], tuple[pd.DataFrame, pd.DataFrame]]:
        """Re-reads (the user's other events, the session's claimed events) from the log for a
        shared state's `absorb`, first claiming session events stored since (by other processes)."""
        store = self.engine.store
        seqs = set(claimed["seq"].tolist())

        def read() -> tuple[pd.DataFrame, pd.DataFrame]:
            seqs.update(store.claim_session(session_id, user_key)["seq"].tolist())
            events = store.user_events(user_key)
            session = events["seq"].isin(seqs).to_numpy()
            return events[~session], events[session]

        return read
