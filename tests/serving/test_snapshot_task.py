"""A running server writes snapshots by itself (every N events), visible in GET /stats."""

from __future__ import annotations

import time

from pulserec.client import Client
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.synthetic import as_events
from pulserec.runtime import snapshot_task
from pulserec.serving.server import BackgroundServer


def test_the_server_snapshots_every_n_events_in_the_background(tmp_path, shop, monkeypatch):
    # The task looks at its triggers every 0.2 s here, not every 1 s: the check that no snapshot
    # comes below the trigger waits the same 2.5 looks (0.5 s, not 2.5 s).
    monkeypatch.setattr(snapshot_task, "CHECK_EVERY_S", 0.2)
    engine = Engine(Settings.load(tmp_path / "data", snapshot_every_events=500, snapshot_every_s=0,
                                  model_watch_interval=0))
    with BackgroundServer(engine) as server:
        client = Client(server.url)
        assert client.stats()["snapshot"] is None
        engine.put_items(list(shop.items))
        engine.ingest(as_events(shop.events.iloc[:600]))
        deadline = time.monotonic() + 60
        while (client.stats()["snapshot"] or {}).get("watermark") != 600 and time.monotonic() < deadline:
            time.sleep(0.2)
        stats = client.stats()["snapshot"]
        assert stats["watermark"] == 600 and stats["events_since"] == 0 and stats["last_error"] is None
        assert (tmp_path / "data" / "snapshots" / stats["file"]).is_file()
        engine.ingest(as_events(shop.events.iloc[600:700]))  # fewer than 500 since: no new snapshot
        time.sleep(2.5 * snapshot_task.CHECK_EVERY_S)
        assert client.stats()["snapshot"]["watermark"] == 600
    engine.close()
