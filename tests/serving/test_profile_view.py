"""GET /users/{id}/profile's view (engine/views.py) builds only what it shows: interests named
for their top entries, recent items and the session from history columns. Its JSON must equal
the full build: every profile entry named (`UserProfile` from its state) and the history read
as `Touch`es, on both state backends, for bulk-imported and per-event histories."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.profiles.profile import DecayedCounter, UserProfile, significant
from pulserec.records import ItemRecord

T0 = 1.7e9


def full_view(engine: Engine, user_id: str) -> dict:
    """The profile JSON as built before the columnar view: the whole profile named, every
    recent touch a `Touch`, the session walked back touch by touch."""
    state, key = engine.state, engine.user_key(user_id)
    with engine.lock, state.reading(key):
        owner = state.owners.get(key)
        copy = state.profiles.get(owner)
        profile = UserProfile.from_state(copy.to_state(), engine.settings.interest_halflife)
        out = profile.to_dict(engine.clock())
        as_of = profile.last_seen
        out["interests"] = {name: [{"name": k, "score": significant(v)} for k, v in full_top(getattr(profile, name), as_of)]
                            for name in ("categories", "tags")}
        stored = engine.store.get_user(key)
        out["user_id"], out["attrs"] = user_id, stored["attrs"] if stored else {}
        recent = list(state.histories.recent(owner))
        catalog = state.catalog
        out["recent_items"] = [{"item_id": catalog.item_ids.id_of(t.item), "title": catalog.record(t.item).title,
                                "type": t.type, "ts": t.ts} for t in reversed(recent[-20:])]
        start = len(recent) - 1
        while start > 0 and recent[start].ts - recent[start - 1].ts <= engine.settings.session_gap:
            start -= 1
        session = recent[start:]
        out["session"] = {"events": len(session), "items": [catalog.item_ids.id_of(t.item) for t in session],
                          "started": session[0].ts}
    return out


def full_top(counter: DecayedCounter, now: float, n: int = 10) -> list[tuple[str, float]]:
    """Every entry scored and ordered (score, then name): the top before candidates were cut."""
    state = counter.to_state()
    if not state:
        return []
    keys = list(state)
    pairs = np.array(list(state.values()), dtype=np.float64)
    scores = pairs[:, 0] * np.exp(-np.maximum(now - pairs[:, 1], 0.0) * counter.rate)
    return [(keys[i], float(scores[i])) for i in np.lexsort((np.array(keys, dtype=object), -scores))[:n].tolist()]


def events_of(user: str, n: int, start: float, gap_every: int) -> list[Event]:
    """`n` events of `user`: views, clicks and searches over 25 items with 40 tags between them,
    a 2-hour gap every `gap_every` events (sessions), equal weights for many tags (ties)."""
    out, ts = [], start
    for k in range(n):
        ts += 7200.0 if k % gap_every == 0 else 60.0
        kind = ("view", "click", "like")[k % 3]
        out.append(Event(f"{user}-{start}-{k}", user, f"i{(k * 7) % 25}", kind, ts,
                         query=f"q{k % 4}" if k % 9 == 0 else None,
                         context={"device": ("mobile", "desktop")[k % 2]} if k % 5 else None))
    return out


@pytest.fixture
def served(tmp_path, backend):
    engine = Engine(Settings.load(tmp_path / "data", **backend))
    engine.put_items([ItemRecord(f"i{i}", title=f"Item {i}", category=f"c{i % 4}",
                                 tags=tuple(f"t{(i * 3 + j) % 40}" for j in range(i % 6))) for i in range(25)])
    yield engine
    engine.close()


def test_profile_view_equals_the_full_build(served):
    engine = served
    engine.ingest_frames([_frame(events_of("bulk", 300, T0, 17))])  # one history segment
    for user, n, gap in (("each", 70, 11), ("short", 3, 100), ("one", 1, 1)):
        for event in events_of(user, n, T0 + 1e6, gap):
            engine.ingest([event])  # per-event touches (pending, not a segment yet)
    engine.ingest(events_of("bulk", 38, T0 + 2e6, 13))  # a long history with pending touches on top
    engine.put_user("attrs-only", {"tier": "gold"})
    for user in ("bulk", "each", "short", "one"):
        got = engine.profile(user)
        assert got == full_view(engine, user), user
        assert len(got["recent_items"]) == min(20, len(list(engine.state.histories.recent(
            engine.state.owners.get(engine.user_key(user))))))
    assert engine.profile("bulk")["session"]["events"] == 12  # the 38 later events: gaps before 0, 13, 26
    assert engine.profile("attrs-only") == {"event_count": 0, "user_id": "attrs-only", "attrs": {"tier": "gold"},
                                             "recent_items": [], "session": {"events": 0, "items": [], "started": None}}
    assert engine.profile("nobody") is None


def _frame(events: list[Event]) -> pd.DataFrame:
    """The events as a stored-event frame for the bulk path (context as JSON text)."""
    return pd.DataFrame({"event_id": [e.event_id for e in events], "user_id": [e.user_id for e in events],
                         "item_id": [e.item_id for e in events], "type": [e.type for e in events],
                         "ts": [e.ts for e in events], "value": None, "session_id": None,
                         "query": [e.query for e in events],
                         "context": [json.dumps(e.context) if e.context else None for e in events], "rec_id": None})
