"""Social ties (issue 14.4) over real HTTP and a real SQLite file: follow routes, bulk import,
durability, the social strategy in the default (cold start from ties), explanations, deletion."""

from __future__ import annotations

import time

import pytest

from pulserec.client import Client, PulserecError
from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.serving.server import BackgroundServer
from pulserec.store.social import SocialGraph
from pulserec.store.sqlite import SQLiteStore

NOW = time.time() - 3600
DAY = 86_400.0


def seed(client: Client) -> None:
    """Twenty items; crowd users view c0..c9 together (the trending, co-viewed part of the shop);
    friend-a likes f0 and buys f1 today, friend-b liked f2 a month ago."""
    client.put_items([{"item_id": i, "title": i.upper()} for i in [f"c{k}" for k in range(10)] + [f"f{k}" for k in range(10)]])
    events = [{"user_id": f"crowd-{u}", "item_id": f"c{k}", "type": "view", "timestamp": NOW + u * 10 + k}
              for u in range(6) for k in range(10)]
    events += [{"user_id": "friend-a", "item_id": "f0", "type": "like", "timestamp": NOW + 100},
               {"user_id": "friend-a", "item_id": "f1", "type": "purchase", "timestamp": NOW + 101},
               {"user_id": "friend-b", "item_id": "f2", "type": "like", "timestamp": NOW - 30 * DAY}]
    client.send_events(events)


def test_follow_routes_list_and_remove_ties(client):
    assert client.follow("newbie", "friend-a")["created"] is True
    assert client.follow("newbie", "friend-a", weight=3.0)["created"] is False  # re-weighted
    client.follow("newbie", "friend-b")
    client.follow("friend-b", "friend-a")
    listed = client.follows("newbie")["follows"]
    assert [(t["user_id"], t["weight"]) for t in listed] == [("friend-a", 3.0), ("friend-b", 1.0)]
    assert {t["user_id"] for t in client.followers("friend-a")["followers"]} == {"newbie", "friend-b"}
    assert client.follows("newbie", limit=1, offset=1)["follows"][0]["user_id"] == "friend-b"
    assert client.unfollow("newbie", "friend-b")["removed"] is True
    assert client.unfollow("newbie", "friend-b")["removed"] is False
    assert [t["user_id"] for t in client.follows("newbie")["follows"]] == ["friend-a"]


@pytest.mark.parametrize("call, field", [
    (lambda c: c.follow("u", "u"), "other_id"),
    (lambda c: c.follow("u", "v", weight=0), "weight"),
    (lambda c: c.follow("u", "v", weight=101), "weight"),
    (lambda c: c.follows("u", limit=0), "limit"),
    (lambda c: c.import_follows([{"follower": "u", "followee": "u"}]), "edges[0].followee"),
    (lambda c: c.import_follows([{"follower": "u", "followee": "v", "extra": 1}]), "extra"),
    (lambda c: c.import_follows([]), "edges"),
])
def test_bad_ties_are_422_naming_the_field(read_server, call, field):
    server, _ = read_server  # refused: nothing is written, so one server serves every case
    with Client(server.url) as client, pytest.raises(PulserecError) as err:
        call(client)
    assert err.value.status == 422 and field in str(err.value.detail)


def test_a_user_with_ties_and_no_events_gets_their_ties_items(client):
    seed(client)
    before = client.recommend("newbie", n=3)["items"]
    assert all("follow" not in r["reason"] for r in before)  # trending only
    client.follow("newbie", "friend-a")
    client.follow("newbie", "friend-b")
    answer = client.recommend("newbie", n=20)
    assert [r["item_id"] for r in answer["items"][:2]] == ["f1", "f0"]  # a purchase counts more than a like
    reasons = {r["item_id"]: r["reason"] for r in answer["items"]}
    assert reasons["f1"] == "bought by someone you follow" and reasons["f0"] == reasons["f2"] == "liked by someone you follow"
    assert [r["item_id"] for r in answer["items"]].index("f2") > 2  # a month-old like fades (halflife 14 days)
    assert "friend" not in str(answer.to_dict())  # who is not revealed
    strong = client.follow("newbie", "friend-b", weight=50.0)  # a strong tie outweighs recency
    assert strong["weight"] == 50.0 and client.recommend("newbie", n=1)["items"][0]["item_id"] == "f2"


def test_ties_blend_into_a_personal_default(client):
    seed(client)
    client.send_event(user_id="regular", item_id="c0", type="view", timestamp=NOW + 500)
    alone = client.recommend("regular", n=12)["items"]
    assert all("follow" not in r["reason"] for r in alone)
    client.follow("regular", "friend-a")
    mixed = client.recommend("regular", n=12)["items"]
    reasons = {r["item_id"]: r["reason"] for r in mixed}
    assert reasons["f1"] == "bought by someone you follow" and reasons["f0"] == "liked by someone you follow"
    assert mixed[0]["item_id"].startswith("c") and mixed[0]["reason"] == "because you viewed C0"  # own history leads
    social = client.recommend("regular", n=2, strategy="social")["items"]
    assert [r["item_id"] for r in social] == ["f1", "f0"]


def test_kept_ties_are_read_again_after_any_tie_write_of_any_connection(tmp_path):
    """The service keeps each user's ties between requests (store/social.py `ties`): a follow or
    unfollow over HTTP, a deletion, and another process's follow (another connection to the same
    SQLite file, as a second worker's) are in the next answer."""
    settings = Settings.load(tmp_path / "data")
    engine = Engine(settings)
    other = SQLiteStore(settings.db_path)  # a second connection to the file: another worker's
    try:
        with BackgroundServer(engine) as server, Client(server.url) as client:
            seed(client)
            followed = lambda: {r["reason"] for r in client.recommend("newbie", n=20)["items"]} & {  # noqa: E731
                "bought by someone you follow", "liked by someone you follow"}
            assert not followed() and not followed()  # read once, then kept
            SocialGraph(other).follow(engine.user_key("newbie"), engine.user_key("friend-a"))
            assert followed() == {"bought by someone you follow", "liked by someone you follow"}
            client.unfollow("newbie", "friend-a")
            assert not followed()
            client.follow("newbie", "friend-b")
            assert followed() == {"liked by someone you follow"}
            SocialGraph(other).unfollow(engine.user_key("newbie"), engine.user_key("friend-b"))
            assert not followed()
            client.follow("newbie", "friend-a")
            assert followed() and followed()
            client.delete_user("friend-a")
            assert not followed()
    finally:
        other.close()
        engine.close()


def test_names_are_shown_only_when_the_setting_allows(tmp_path):
    engine = Engine(Settings.load(tmp_path / "data", social_reveal_names=True))
    try:
        with BackgroundServer(engine) as server, Client(server.url) as client:
            seed(client)
            client.follow("newbie", "friend-a")
            assert client.recommend("newbie", n=1)["items"][0]["reason"] == "bought by friend-a"
    finally:
        engine.close()


def test_ties_are_durable_imported_in_bulk_and_deleted_both_ways(tmp_path):
    settings = Settings.load(tmp_path / "data")
    engine = Engine(settings)
    with BackgroundServer(engine) as server, Client(server.url) as client:
        seed(client)
        result = client.import_follows([{"follower": "newbie", "followee": "friend-a"},
                                        {"follower": "friend-a", "followee": "newbie", "weight": 2},
                                        {"follower": "newbie", "followee": "friend-a", "weight": 4}])
        assert result == {"edges": 3, "created": 2}
    engine.close()
    engine = Engine(settings)  # a restart: the ties are in the SQLite file
    try:
        with BackgroundServer(engine) as server, Client(server.url) as client:
            assert [(t["user_id"], t["weight"]) for t in client.follows("newbie")["follows"]] == [("friend-a", 4.0)]
            assert client.recommend("newbie", n=1)["items"][0]["item_id"] == "f1"
            client.delete_user("friend-a")
            assert client.follows("newbie")["follows"] == [] and client.followers("newbie")["followers"] == []
            assert client.follows("friend-a")["follows"] == []
            assert not client.recommend("newbie", n=3)["items"][0]["item_id"].startswith("f")
        db = (tmp_path / "data" / "pulserec.db").read_bytes()
        wal = tmp_path / "data" / "pulserec.db-wal"
        assert b"friend-a" not in db and (not wal.exists() or b"friend-a" not in wal.read_bytes())
    finally:
        engine.close()


def test_pulserec_import_follows_loads_a_file_and_reports_bad_rows(tmp_path):
    import os
    import subprocess
    import sys

    ties = tmp_path / "ties.csv"
    ties.write_text("follower,followee,weight\nnewbie,friend-a,2\nnewbie,friend-b,\nnewbie,newbie,1\n"
                    "friend-a,,1\nfriend-b,newbie,-3\nfriend-b,newbie,soon\n")
    data = tmp_path / "data"
    result = subprocess.run([sys.executable, "-m", "pulserec.cli.main", "import", "--follows", str(ties), "--data-dir", str(data)],
                            capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 rows, 2 stored, 0 duplicates, 4 rejected" in result.stdout
    for row, field in ((3, "followee"), (4, "followee"), (5, "weight"), (6, "weight")):  # row 1: the first data row
        assert f"row {row} {field}" in result.stdout
    engine = Engine(Settings.load(data))
    try:
        ties = engine.ties("newbie", "follows", 10)
        assert [(t["user_id"], t["weight"]) for t in ties] == [("friend-a", 2.0), ("friend-b", 1.0)]
        assert engine.ties("friend-b", "follows", 10) == []
    finally:
        engine.close()
