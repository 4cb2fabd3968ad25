"""A server seeded with the synthetic shop over HTTP (one per test module), for metrics and dashboard tests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pulserec.client import Client
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.ingest.synthetic import SyntheticData
from pulserec.serving.server import BackgroundServer

#: Evaluation summary written next to the fake report, shown in the dashboard's models table.
EVALUATION = {"models": {"item_knn": {"ndcg@10": 0.1234, "recall@10": 0.2345}}}


@dataclass
class Seeded:
    server: BackgroundServer
    client: Client
    engine: Engine
    shop: SyntheticData
    data_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def busiest_user(self) -> str:
        return str(self.shop.events["user_id"].value_counts().index[0])


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    """A synthetic event row as the JSON body of POST /events."""
    event = {k: row[k] for k in ("event_id", "user_id", "item_id", "type") if isinstance(row.get(k), str)}
    event["timestamp"] = float(row["ts"])
    event["context"] = {"device": row["device"], "location": row["location"]}
    if isinstance(row.get("query"), str):
        event["query"] = row["query"]
    if row.get("value") is not None and row["value"] == row["value"]:  # a rating's stars, a purchase's price
        event["value"] = float(row["value"])
    return event


def seed(client: Client, shop: SyntheticData, batch: int = 1000) -> None:
    client.put_items([{"item_id": i.item_id, "title": i.title, "category": i.category, "tags": list(i.tags), "price": i.price}
                      for i in shop.items])
    rows = [event_json(r) for r in shop.events.to_dict("records")]
    for start in range(0, len(rows), batch):
        client.send_events(rows[start:start + batch])
    for user in shop.events["user_id"].value_counts().index[:5]:
        client.recommend(str(user), n=10)
        client.recommend(str(user), n=10, strategy="item_knn")


def write_report(data_dir: Path) -> None:
    reports = data_dir / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "index.html").write_text("<!doctype html><title>Evaluation</title><h1>Evaluation</h1>")
    (reports / "metrics.json").write_text(json.dumps(EVALUATION))


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """Where a browser test saves its screenshots: $PULSEREC_SCREENSHOTS, else a temporary directory."""
    folder = Path(os.environ.get("PULSEREC_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{request.module.__name__}: screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory, shop: SyntheticData) -> Iterator[Seeded]:
    data_dir = tmp_path_factory.mktemp("seeded")
    write_report(data_dir)
    engine = Engine(Settings.load(data_dir))
    with BackgroundServer(engine) as server, Client(server.url) as client:
        seed(client, shop)
        yield Seeded(server, client, engine, shop, data_dir)
    engine.close()
