"""An anonymous session that logs in becomes part of the user, exactly."""

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event

T = 1_700_000_000.0


def test_login_merges_the_session_into_the_user(engine, shop, tmp_path):
    engine.put_items(list(shop.items))
    ids = [i.item_id for i in shop.items]
    common = [Event(f"c{k}", f"other{k % 5}", ids[k % 30], "view", T + k) for k in range(200)]
    engine.ingest(common)
    engine.ingest([Event("u1", "alice", ids[0], "view", T + 300), Event("u2", "alice", ids[1], "view", T + 301)])
    engine.ingest([Event(f"s{k}", None, ids[10 + k], "view", T + 400 + k, session_id="sess-9") for k in range(3)])
    assert not engine.recommend_session("sess-9", 5).cold_start
    engine.ingest([Event("login", "alice", ids[20], "click", T + 500, session_id="sess-9")])
    assert engine.counters["sessions.merged"] == 1
    profile = engine.profile("alice")
    assert profile["event_count"] == 6
    assert [r["item_id"] for r in profile["recent_items"]][:4] == [ids[20], ids[12], ids[11], ids[10]]
    assert engine.recommend_session("sess-9", 5).cold_start  # the session now lives in the user
    assert len(engine.store.user_events("alice")) == 6

    # The merged state equals a state built from the log with those events as alice's.
    rebuilt = Engine(Settings.load(engine.settings.data_dir))
    users = ["alice"] + [f"other{k}" for k in range(5)]
    for user in users:
        assert [(r.item_id, round(r.score, 9)) for r in engine.recommend(user, 10).items] == \
               [(r.item_id, round(r.score, 9)) for r in rebuilt.recommend(user, 10).items]
    assert engine.delete_user("alice") == 6
    rebuilt.close()
