"""Dwell time (issue 14.2): events carry `dwell_seconds`, validated everywhere, and one curve scales
a view's weight for the online state and the training data alike."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from pulserec.client import Client, PulserecError
from pulserec.config import Settings
from pulserec.event_weights import DwellCurve, EventWeights
from pulserec.events import Event
from pulserec.ingest.importer import import_events
from pulserec.models.interactions import Interactions

NOW = time.time() - 3600


def test_the_curve_counts_bounces_little_long_reads_more_and_caps():
    curve = DwellCurve(bounce_s=3, bounce_factor=0.25, cap_s=300, max_factor=3)
    f = curve.factors(np.array([0, 2.9, 3, 10, 60, 300, 5000, np.nan]))
    assert f[0] == f[1] == 0.25 and f[2] == 1.0 and f[-1] == 1.0  # bounce, the knee, no dwell stated
    assert 1.0 < f[3] < f[4] < f[5] == 3.0 == f[6]  # grows with log(dwell), capped at cap_s
    assert np.all(np.round(f / 0.125) * 0.125 == f)  # a bounded set of weights (history kind codes)
    weights = EventWeights({"view": 1.0, "purchase": 8.0}, ("view",), curve)
    assert weights.of("purchase", 600.0) == 8.0  # only dwell types scale
    types = np.array(["view", "view", "purchase", "view"], dtype=object)
    dwell = np.array([1.0, 120.0, 600.0, np.nan])
    assert weights.of_arrays(types, dwell).tolist() == [weights.of(t, None if np.isnan(d) else d) for t, d in zip(types, dwell)]


def test_settings_refuse_a_curve_that_cannot_be_served(tmp_path):
    with pytest.raises(ValueError, match="dwell_bounce_s"):
        Settings.load(tmp_path, dwell_bounce_s=400.0)
    with pytest.raises(ValueError, match="dwell_max_factor"):
        Settings.load(tmp_path, dwell_max_factor=20.0)
    with pytest.raises(ValueError, match="dwell_types"):
        Settings.load(tmp_path, dwell_types=("glance",))


def _seed(client) -> None:
    """Readers of `a` go on to a1..a3, readers of `b` to b1..b3."""
    client.put_items([{"item_id": i, "title": i.upper()} for g in "ab" for i in (g, f"{g}1", f"{g}2", f"{g}3")])
    events = [{"user_id": f"{g}-fan-{u}", "item_id": item, "type": "view", "timestamp": NOW + u * 10 + k}
              for g in "ab" for u in range(4) for k, item in enumerate((g, f"{g}1", f"{g}2", f"{g}3"))]
    client.send_events(events)


def test_the_long_dwell_view_dominates_the_next_recommendations(client):
    _seed(client)
    # The long read comes first: position decay favours the later bounce, the dwell must win anyway.
    client.send_event(user_id="reader", item_id="b", type="view", timestamp=NOW + 500, dwell_seconds=240.0)
    client.send_event(user_id="reader", item_id="a", type="view", timestamp=NOW + 501, dwell_seconds=1.5)
    top = [r["item_id"] for r in client.recommend("reader", n=3)["items"]]
    assert top == sorted(top) and set(top) == {"b1", "b2", "b3"}
    # Without dwell times the later view leads: the test above is the dwell's doing.
    client.send_event(user_id="plain", item_id="b", type="view", timestamp=NOW + 500)
    client.send_event(user_id="plain", item_id="a", type="view", timestamp=NOW + 501)
    assert client.recommend("plain", n=1)["items"][0]["item_id"].startswith("a")


@pytest.mark.parametrize("dwell", [-1, 86_401, "12", True])
def test_a_dwell_out_of_range_is_a_422_naming_the_field(read_server, dwell):
    server, _ = read_server  # refused: one server for every case
    with Client(server.url) as client, pytest.raises(PulserecError) as err:
        client.send_events([{"user_id": "u", "item_id": "x", "type": "view"},
                            {"user_id": "u", "item_id": "x", "type": "view", "dwell_seconds": dwell}])
    assert err.value.status == 422 and "events[1].dwell_seconds" in str(err.value.detail)


def test_the_engine_refuses_a_bad_dwell_from_python_too(engine):
    from pulserec.validation import InvalidInput

    with pytest.raises(InvalidInput) as err:
        engine.ingest([Event("e1", "u", "x", "view", NOW, dwell_seconds=float("nan"))])
    assert err.value.field == "dwell_seconds" and engine.store.event_count() == 0


def test_csv_import_reads_and_checks_dwell_and_training_weights_use_it(engine, tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,type,ts,dwell_seconds\n"
                    f"u1,x,view,{NOW},240\nu1,y,view,{NOW + 1},1\nu2,x,view,{NOW + 2},\n"
                    f"u2,y,view,{NOW + 3},-5\nu3,y,view,{NOW + 4},soon\n")
    report = import_events(engine, path)
    assert report.accepted == 3 and report.rejected == 2
    assert {e["row"] for e in report.errors} == {4, 5} and {e["field"] for e in report.errors} == {"dwell_seconds"}
    frame = pd.concat(list(engine.store.iter_events()), ignore_index=True)
    assert frame["dwell_seconds"].tolist()[:2] == [240.0, 1.0] and pd.isna(frame["dwell_seconds"].iloc[2])
    data = Interactions.from_frame(frame, engine.settings.weighting)
    weighting = engine.settings.weighting
    assert data.weights.tolist() == pytest.approx([weighting.of("view", 240.0), weighting.of("view", 1.0), 1.0])
    state = engine.state
    x = state.catalog.item_ids.get("x")
    assert state.popularity.all_time(len(state.catalog))[x] == pytest.approx(weighting.of("view", 240.0) + 1.0)


def test_a_store_from_before_dwell_gets_the_column_and_keeps_its_events(tmp_path):
    import sqlite3

    from pulserec.store import SQLiteStore

    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript("CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, user_id TEXT, "
                      "item_id TEXT, type TEXT NOT NULL, ts REAL NOT NULL, value REAL, session_id TEXT, query TEXT, "
                      "context TEXT, rec_id TEXT);"
                      "INSERT INTO events (event_id, user_id, item_id, type, ts) VALUES ('e0', 'u', 'x', 'view', 1e9);")
    old.close()
    store = SQLiteStore(tmp_path / "old.db", accept_data_loss=True)
    try:
        store.append_events([Event("e1", "u", "y", "view", 1e9 + 1, dwell_seconds=33.0).row()])
        frame = pd.concat(list(store.iter_events()), ignore_index=True)
        assert frame["event_id"].tolist() == ["e0", "e1"]
        assert pd.isna(frame["dwell_seconds"].iloc[0]) and frame["dwell_seconds"].iloc[1] == 33.0
    finally:
        store.close()
