"""What the online-state tests share: the shop's log as the store holds it, events of its rows,
and the answers a state gives (recommendations, rounded profiles)."""

import json

import numpy as np
import pandas as pd

from pulserec.events import Event
from pulserec.online.base import State
from pulserec.recommend.service import RecommendationService


def stored_frame(shop) -> pd.DataFrame:
    """The shop's events as stored rows; views carry a dwell time (0-100 s, one in five none) so
    that every state is checked on dwell-scaled weights too."""
    ev = shop.events
    seq = np.arange(1, len(ev) + 1)
    dwell = np.where((ev["type"] == "view").to_numpy() & (seq % 5 != 0), (seq * 7919 % 400) / 4.0, np.nan)
    return pd.DataFrame({
        "seq": np.arange(1, len(ev) + 1),
        "event_id": ev["event_id"], "user_id": ev["user_id"], "item_id": ev["item_id"], "type": ev["type"],
        "ts": ev["ts"], "value": ev["value"], "session_id": None, "query": ev["query"],
        "context": [json.dumps({"device": d, "location": l}) for d, l in zip(ev["device"], ev["location"])],
        "rec_id": None, "dwell_seconds": pd.Series(dwell).astype(object).where(~np.isnan(dwell), None),
    })


def event_of(r) -> Event:
    """The event of one row of `stored_frame`."""
    return Event(r.event_id, r.user_id, r.item_id if isinstance(r.item_id, str) else None, r.type, r.ts,
                 None, None, r.query if isinstance(r.query, str) else None, json.loads(r.context),
                 dwell_seconds=None if r.dwell_seconds is None else float(r.dwell_seconds))


def rounded(value):
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def answers(state: State, users) -> dict[str, list[tuple[str, float]]]:
    service = RecommendationService(state, state.settings)
    return {u: [(r.item_id, round(r.score, 6)) for r in service.recommend(u, 10).items] for u in users}
