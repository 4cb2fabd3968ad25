"""An anonymous session that logs in becomes part of the user, exactly, on both state backends:
the merged state equals the state of a log in which those events were the user's all along."""

from __future__ import annotations

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import SESSION_PREFIX, Event
from pulserec.online.redis.state import RedisState
from pulserec.online.streams.redis_streams import StreamUpdater
from pulserec.urls import stream_key

from state_helpers import rounded

T = 1_700_000_000.0
USERS = ["alice"] + [f"other{k}" for k in range(5)]


@pytest.fixture
def settings(tmp_path, backend) -> Settings:
    return Settings.load(tmp_path / "data", **backend)


def redis_settings(redis_server, data_dir, **overrides) -> Settings:
    return Settings.load(data_dir, state_url=redis_server.url, state_namespace=redis_server.namespace(), **overrides)


def item_ids(shop) -> list[str]:
    return [i.item_id for i in shop.items]


def common_events(shop) -> list[Event]:
    ids = item_ids(shop)
    return [Event(f"c{k}", f"other{k % 5}", ids[k % 30], "view", T + k) for k in range(200)]


def alice_events(shop) -> list[Event]:
    ids = item_ids(shop)
    return [Event("u1", "alice", ids[0], "view", T + 300), Event("u2", "alice", ids[1], "view", T + 301),
            Event("u3", "alice", None, "search", T + 302, query="trail shoes")]


def session_events(shop, first: int = 0, last: int = 5) -> list[Event]:
    """Anonymous events of sess-9: views, an item-less search and an add-to-cart."""
    ids = item_ids(shop)
    events = [Event(f"s{k}", None, ids[10 + k], "view", T + 400 + k, session_id="sess-9") for k in range(3)]
    events += [Event("s3", None, None, "search", T + 403, session_id="sess-9", query="red"),
               Event("s4", None, ids[13], "add_to_cart", T + 404, session_id="sess-9", context={"device": "mobile"})]
    return events[first:last]


def login_event(shop) -> Event:
    return Event("login", "alice", item_ids(shop)[20], "click", T + 500, session_id="sess-9")


def seed(engine: Engine, shop) -> None:
    """Everything before the login: other users, alice's own events, the anonymous session."""
    engine.put_items(list(shop.items))
    engine.ingest(common_events(shop))
    engine.ingest(alice_events(shop))
    engine.ingest(session_events(shop))


def listing(answer) -> list[tuple[str, float, str]]:
    return [(r.item_id, round(r.score, 9), r.reason) for r in answer.items]


def history(engine: Engine, key: str) -> tuple[list[tuple], list[str]]:
    """(recent touches as (item, type, ts, weight), seen items) of one owner."""
    state = engine.state
    with state.reading(key):
        owner = state.owners.get(key)
        ids = state.catalog.item_ids
        recent = [(ids.id_of(t.item), t.type, t.ts, t.weight) for t in state.histories.recent(owner)]
        return recent, sorted(ids.id_of(i) for i in state.histories.seen(owner))


def observe(engine: Engine, shop) -> dict:
    """What a merge changes, as the API shows it: recommendations, the user's profile, history and
    seen items, the session's, similar items with their scores, and the event counters."""
    ids = item_ids(shop)
    stats = engine.stats()
    return {
        "recommend": {user: listing(engine.recommend(user, 10)) for user in USERS},
        "session": (engine.recommend_session("sess-9", 5).cold_start, listing(engine.recommend_session("sess-9", 5))),
        "profile": rounded(engine.profile("alice")),
        "history": history(engine, "alice"),
        "session history": history(engine, SESSION_PREFIX + "sess-9"),
        "similar": {i: listing_similar(engine.similar(i, 8)) for i in ids[:31:3]},
        "counts": (stats["events_applied"], stats["users"], engine.item(ids[10])["events"]),
    }


def listing_similar(items) -> list[tuple[str, float]]:
    return [(r.item_id, round(r.score, 9)) for r in items]


def from_the_log(engine: Engine) -> Engine:
    """A fresh in-memory engine built from `engine`'s log (where the claimed events are the user's)."""
    return Engine(Settings.load(engine.settings.data_dir))


def test_login_merges_the_session_into_the_user(engine, shop):
    seed(engine, shop)
    ids = item_ids(shop)
    assert not engine.recommend_session("sess-9", 5).cold_start
    before = observe(engine, shop)
    engine.ingest([login_event(shop)])
    assert engine.counters["sessions.merged"] == 1
    profile = engine.profile("alice")
    assert profile["event_count"] == 3 + 5 + 1
    assert [r["item_id"] for r in profile["recent_items"]][:5] == [ids[20], ids[13], ids[12], ids[11], ids[10]]
    assert engine.recommend_session("sess-9", 5).cold_start  # the session now lives in the user
    assert history(engine, SESSION_PREFIX + "sess-9") == ([], [])
    if engine.state.shared:  # the merged session's id left the owner map (the in-memory state keeps the slot)
        assert engine.state.client.hget(engine.state.keys.owners, SESSION_PREFIX + "sess-9") is None
        assert (SESSION_PREFIX + "sess-9").encode() not in engine.state.client.lrange(engine.state.keys.owners_ids, 0, -1)
    assert len(engine.store.user_events("alice")) == 9
    after = observe(engine, shop)
    assert after["similar"] != before["similar"]  # the session's pairs now pair with alice's too
    assert after["counts"][0] == before["counts"][0] + 1 and after["counts"][2] == before["counts"][2]  # counted once

    # The merged state equals a state built from the log with those events as alice's.
    rebuilt = from_the_log(engine)
    assert observe(rebuilt, shop) == after
    rebuilt.close()
    assert engine.delete_user("alice") == 9
    assert engine.stats()["events_applied"] == engine.store.event_count() == 200


def test_a_namespace_loaded_from_the_merged_log_holds_the_merged_state(tmp_path, shop, redis_server):
    """(That the merge equals the log on each backend is test_login_merges_the_session_into_the_user.)"""
    shared = Engine(redis_settings(redis_server, tmp_path / "redis"))
    seed(shared, shop)
    shared.ingest([login_event(shop)])
    reloaded = Engine(redis_settings(redis_server, tmp_path / "redis"))
    assert observe(reloaded, shop) == observe(shared, shop)
    reloaded.close()
    shared.close()


def test_redelivered_or_replayed_session_events_are_not_applied_again(tmp_path, shop, redis_server):
    engine = Engine(redis_settings(redis_server, tmp_path))
    seed(engine, shop)
    engine.ingest([login_event(shop)])
    after = observe(engine, shop)
    stored = {e.event_id: s for e, s in zip(session_events(shop), range(204, 209))}
    assert engine.store.user_events("alice").set_index("event_id")["seq"].to_dict().items() >= stored.items()
    # A stream redelivers the session's events under the session: they were applied, nothing changes.
    assert engine.state.apply_many([(e, stored[e.event_id]) for e in session_events(shop)]) == [False] * 5
    for frame in engine.store.iter_events():  # nor does a replay of the whole log (catch-up)
        engine.state.apply_frame(frame)
    assert observe(engine, shop) == after
    assert engine.state.applied == engine.store.event_count() == 209
    engine.close()


@pytest.mark.parametrize("applied_before", [2, 0])
def test_stream_mode_merges_events_the_updater_has_not_applied_yet(tmp_path, shop, redis_server, applied_before):
    """The API process merges at login (before storing the login event); session and user events
    still in the stream are applied by the merge, so the updater finds them applied already. The
    log, not the lagging state, tells whether there is a session to merge."""
    settings = redis_settings(redis_server, tmp_path / "stream", stream_url=redis_server.url)
    api = Engine(settings)
    assert not api.applies_locally
    worker = StreamUpdater(RedisState(settings), settings.stream_url, stream_key(settings), block_ms=0)
    api.put_items(list(shop.items))
    api.ingest(common_events(shop))
    api.ingest(alice_events(shop)[:2])
    api.ingest(session_events(shop, 0, applied_before))
    worker.step()  # the updater has applied everything so far
    api.ingest(alice_events(shop)[2:])  # still in the stream at login: one of alice's, the rest of the session's
    api.ingest(session_events(shop, applied_before, 5))
    assert api.state.applied == 202 + applied_before
    api.ingest([login_event(shop)])
    assert api.counters["sessions.merged"] == 1
    assert api.state.applied == 208  # the merge applied the unapplied events; the login is in the stream
    worker.step()
    assert (worker.stats.applied, worker.stats.duplicates) == (202 + applied_before + 1, 6 - applied_before)

    memory = Engine(Settings.load(tmp_path / "memory"))
    seed(memory, shop)
    memory.ingest([login_event(shop)])
    assert observe(api, shop) == observe(memory, shop)
    worker.close()
    api.close()
    memory.close()


def test_writes_racing_with_a_merge_make_it_start_over(tmp_path, shop, redis_server, monkeypatch):
    """Another process applies an event of the user and one of the session while the merge is
    between reading the owners' versions and committing: the commit conflicts, and the retry
    reads the log again (claiming the session's new event too)."""
    settings = redis_settings(redis_server, tmp_path)
    engine, other = Engine(settings), Engine(settings)
    seed(engine, shop)
    ids = item_ids(shop)
    reads = []
    merge_logs = engine.sessions.merge_logs

    def racing_logs(user_key, session_id, claimed):
        read = merge_logs(user_key, session_id, claimed)

        def racing_read():
            logs = read()
            if not reads:
                other.ingest([Event("race-u", "alice", ids[5], "purchase", T + 450),
                              Event("race-s", None, ids[6], "view", T + 451, session_id="sess-9")])
            reads.append(sorted(logs[0]["event_id"]) + sorted(logs[1]["event_id"]))
            return logs

        return racing_read

    monkeypatch.setattr(engine.sessions, "merge_logs", racing_logs)
    engine.ingest([login_event(shop)])
    assert len(reads) == 2 and "race-u" not in reads[0] and {"race-u", "race-s"} <= set(reads[1])
    assert len(engine.store.user_events("alice")) == 3 + 5 + 2 + 1  # race-s was claimed by the retry
    merged = observe(engine, shop)
    assert merged["session"][0]  # nothing left under the session
    rebuilt = from_the_log(engine)
    assert observe(rebuilt, shop) == merged == observe(other, shop)
    rebuilt.close()
    other.close()
    engine.close()


def test_a_redis_merge_is_one_commit_and_nothing_shows_before_it(tmp_path, shop, redis_server, monkeypatch):
    """Readers see the state before the merge or after it, never part of it: the merge writes
    nothing before its single COMMIT (only owner and item ids are interned ahead).

    Search intent is off here: what people chose after searching is read from the log
    (store/search_log.py), which holds the claimed session before the state's COMMIT, so
    alice's answers would show her search followed by the session's views a moment early."""
    engine = Engine(redis_settings(redis_server, tmp_path, search_intent_weight=0.0))
    seed(engine, shop)
    before = observe(engine, shop)
    commit, unchanged = engine.state.commit, []

    def watched(plan):
        unchanged.append(observe(engine, shop) == before)
        return commit(plan)

    monkeypatch.setattr(engine.state, "commit", watched)
    engine.ingest([login_event(shop)])
    assert unchanged == [True]
    assert observe(engine, shop)["history"] != before["history"]
    engine.close()
