"""The online state gives the same answers whichever path built it, and forgets users exactly."""

import json

import numpy as np
import pandas as pd
from pulserec.config import Settings
from pulserec.events import Event
from pulserec.online.state import OnlineState
from pulserec.recommend.service import RecommendationService


def stored_frame(shop) -> pd.DataFrame:
    ev = shop.events
    return pd.DataFrame({
        "seq": np.arange(1, len(ev) + 1),
        "event_id": ev["event_id"], "user_id": ev["user_id"], "item_id": ev["item_id"], "type": ev["type"],
        "ts": ev["ts"], "value": ev["value"], "session_id": None, "query": ev["query"],
        "context": [json.dumps({"device": d, "location": l}) for d, l in zip(ev["device"], ev["location"])],
        "rec_id": None,
    })


def build(shop, incremental: bool, frame=None) -> OnlineState:
    state = OnlineState(Settings())
    for item in shop.items:
        state.catalog.upsert(item)
    frame = stored_frame(shop) if frame is None else frame
    if incremental:
        for r in frame.itertuples(index=False):
            state.apply(Event(r.event_id, r.user_id, r.item_id if isinstance(r.item_id, str) else None, r.type, r.ts,
                              None, None, r.query if isinstance(r.query, str) else None, json.loads(r.context)), r.seq)
    else:
        state.apply_frame(frame)
    return state


def rounded(value):
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def answers(state: OnlineState, users):
    service = RecommendationService(state, state.settings)
    return {u: [(r.item_id, round(r.score, 6)) for r in service.recommend(u, 10).items] for u in users}


def test_incremental_and_bulk_paths_agree(shop):
    a, b = build(shop, True), build(shop, False)
    users = shop.users["user_id"].tolist()[:25]
    assert answers(a, users) == answers(b, users)
    np.testing.assert_allclose(a.popularity.trending_scores(120), b.popularity.trending_scores(120), rtol=1e-9)
    for user in users[:10]:
        pa = a.profiles.get(a.owners.get(user)).to_dict(a.now)
        pb = b.profiles.get(b.owners.get(user)).to_dict(b.now)
        assert rounded(pa) == rounded(pb)


def test_forgetting_a_user_equals_never_having_seen_them(shop):
    frame = stored_frame(shop)
    victim = frame["user_id"].value_counts().index[0]
    full = build(shop, False, frame)
    full.forget(victim, frame[frame["user_id"] == victim])
    without = build(shop, False, frame[frame["user_id"] != victim])
    users = [u for u in shop.users["user_id"].tolist()[:30] if u != victim]
    assert answers(full, users) == answers(without, users)
    assert full.profiles.get(full.owners.get(victim)) is None
    np.testing.assert_allclose(full.popularity.all_time(120), without.popularity.all_time(120), atol=1e-9)
