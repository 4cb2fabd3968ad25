"""Background rebuild: swaps atomically, loses no event, readers never see a half-built state."""

import threading

from pulserec.events import Event
from pulserec.recommend.service import Filters




def test_rebuild_gives_the_same_answers_and_loses_nothing(engine, shop, fill):
    fill(engine)
    users = shop.users["user_id"].tolist()[:20]
    before = {u: [r.item_id for r in engine.recommend(u, 10).items] for u in users}
    applied = engine.state.applied
    info = engine.rebuilds.rebuild()
    assert info["events"] == applied == engine.store.event_count()
    assert {u: [r.item_id for r in engine.recommend(u, 10).items] for u in users} == before


def test_events_and_deletions_during_a_rebuild_are_kept(engine, shop, fill, monkeypatch):
    fill(engine, upto=2000)
    late = [Event(f"late-{i}", "latecomer", shop.items[i].item_id, "purchase", shop.events["ts"].max() + i) for i in range(3)]
    victim = shop.events["user_id"].iloc[0]
    original = engine.rebuilds._fresh_state

    def slow_build(*args):  # events and a deletion arrive while the new state is being built
        state = original(*args)
        engine.ingest(late)
        engine.delete_user(victim)
        return state

    monkeypatch.setattr(engine.rebuilds, "_fresh_state", slow_build)
    info = engine.rebuilds.rebuild()
    assert info["reapplied_during_build"] == 3
    assert engine.state.applied == engine.store.event_count()
    assert engine.profile("latecomer")["counts_by_type"] == {"purchase": 3}
    assert engine.profile(victim) is None


def test_readers_never_see_a_half_built_state(engine, shop, fill):
    fill(engine)
    users = shop.users["user_id"].tolist()
    errors, sizes = [], []
    stop = threading.Event()

    def reader():
        i = 0
        while not stop.is_set():
            try:
                sizes.append(len(engine.recommend(users[i % len(users)], 10, Filters()).items))
            except Exception as exc:  # noqa: BLE001 - any failure is the bug we look for
                errors.append(exc)
            i += 1

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(3):
        engine.rebuilds.rebuild()
    stop.set()
    for t in threads:
        t.join()
    assert not errors and sizes and set(sizes) == {10}


def test_a_rebuild_carries_every_served_model_over_once(engine, fill):
    """Trained models, blends of them and models of other kinds all follow the new state; a
    blend's part is the very model served under that name (re-bound once)."""
    from pulserec.models.blend import Blend

    fill(engine, upto=2000)
    engine.training.train(["als"], save=False)
    als = engine.service.strategies["als"]
    engine.service.register(Blend([(als, 1.0), (engine.service.item_knn, 0.5)], name="mix"))
    engine.rebuilds.rebuild()
    served = engine.service.strategies
    assert served["als"] is not als and served["als"].catalog is engine.state.catalog
    assert served["als"].meta["version"] == 1
    assert [part for part, _ in served["mix"].components] == [served["als"], served["item_knn"]]
    assert served["default"].components[0][0] is engine.service.item_knn


def test_a_live_item_knn_built_outside_the_set_keeps_its_support_rule(engine, fill):
    """A view over the state's co-occurrence registered by hand (as a ranker's source may be)
    moves to the new state with its minimum support, counted by the new state's histories (owners per item)."""
    from pulserec.models.item_knn import ItemKNN

    fill(engine, upto=500)
    engine.service.register(ItemKNN(engine.state.cooc, support=engine.state.histories, min_support=5), name="strict")
    engine.service.register(ItemKNN(engine.state.cooc), name="loose")
    engine.rebuilds.rebuild()
    strict, loose = engine.service.strategies["strict"], engine.service.strategies["loose"]
    assert strict.cooc is loose.cooc is engine.state.cooc
    assert strict.support is engine.state.histories and strict.min_support == 5
    assert loose.support is None and loose.min_support == 0


def test_a_replica_keeps_its_trained_models_after_a_deletion(tmp_path, shop):
    from pulserec.config import Settings
    from pulserec.replica import ReplicaEngine

    engine = ReplicaEngine(Settings.load(tmp_path, follow_log=True))
    try:
        engine.ingest([Event(f"e{k}", f"u{k % 7}", shop.items[k % 30].item_id, "click", 1.7e9 + k) for k in range(300)])
        engine.training.train(["als"], save=False)
        engine.delete_user("u1")  # the replica resets its state
        assert engine.service.strategies["als"].catalog is engine.state.catalog
        assert engine.recommend("u2", 5, strategy="als").strategy == "als"
    finally:
        engine.close()
