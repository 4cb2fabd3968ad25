"""Item-kNN's long-term part kept per user (models/long_term_cache.py), on both states: answers
are the same kept or not (scores to the bit between a kept part and a fresh gather, the one pass
to rounding, explanations equal), every write anywhere is seen by the very next answer, memory
stays within its bound, and a returning user's request on the Redis state is one script call."""

from __future__ import annotations

import numpy as np
import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.events import Event
from pulserec.ingest.synthetic import as_events
from pulserec.models.long_term_cache import LongTermCache, long_term_part


def scored_both_ways(engine, user):
    """(one pass without the cache, the split score with it) for the user's served query."""
    service = engine.service
    knn = service.models.item_knn
    with engine.state.reading(user):
        query = service.query_for(user)
        cache, knn.long_term_cache = knn.long_term_cache, None
        try:
            plain = knn.score_explained(query, query.n_items)
        finally:
            knn.long_term_cache = cache
        split = knn.score_explained(query, query.n_items)
        picks = np.argsort(-plain.scores, kind="stable")[:20]
        return plain.scores, plain.explain(picks), split.scores, split.explain(picks)


def test_a_kept_part_answers_as_a_fresh_gather(shop_engine, shop):
    knn = shop_engine.service.models.item_knn
    users = shop.events["user_id"].iloc[:1500].unique()[:8].tolist()
    for user in users:
        first = scored_both_ways(shop_engine, user)  # not kept (first split request) or built
        kept = scored_both_ways(shop_engine, user)
        again = scored_both_ways(shop_engine, user)
        np.testing.assert_allclose(first[2], first[0], rtol=1e-12, atol=1e-15)
        assert first[3] == first[1] and kept[3] == kept[1] and again[3] == again[1]
        assert np.array_equal(first[2], again[2]) and np.array_equal(kept[2], again[2])
    assert knn.long_term_cache.hits >= len(users) and len(knn.long_term_cache) == len(users)


def test_every_write_is_in_the_next_answer(shop_engine, shop):
    """An event of the user, and one of another user touching the user's items, both move the
    rows' revision: the next answer is the one a fresh gather gives, not the kept part's."""
    user, other = shop.events["user_id"].iloc[:1500].unique()[:2].tolist()
    item = shop.items[-1].item_id
    scored_both_ways(shop_engine, user)
    before = scored_both_ways(shop_engine, user)
    ts = float(shop.events["ts"].iloc[1499])
    for k, who in enumerate((other, other, user)):
        shop_engine.ingest([Event(f"fresh-{k}", who, item, "purchase", ts + 1 + k)])
        after = scored_both_ways(shop_engine, user)
        np.testing.assert_allclose(after[2], after[0], rtol=1e-12, atol=1e-15)
        assert after[3] == after[1]
    assert not np.allclose(after[2], before[2])  # the user's own event changed their scores


def test_the_cache_keeps_within_its_bytes_least_recent_out_first():
    rng = np.random.default_rng(0)
    parts = [long_term_part(rng.permutation(np.repeat(np.arange(20), 2)), rng.random(40), np.repeat(np.arange(4), 10))
             for _ in range(5)]  # 20 neighbours each
    items = np.arange(4, dtype=np.int64)
    size = parts[0].nbytes + items.nbytes
    cache = LongTermCache(max_bytes=3 * size)
    for owner, part in enumerate(parts[:3]):
        cache.put(owner, "r1", items, part)
    assert cache.get(0, "r1", items) is parts[0]  # 0 is now the most recent
    cache.put(3, "r1", items, parts[3])
    assert cache.get(1, "r1", items) is None and cache.get(0, "r1", items) is parts[0]  # 1 went
    assert cache.nbytes <= 3 * size and len(cache) == 3
    assert cache.get(0, "r2", items) is None  # another revision
    assert cache.get(0, "r1", items[::-1].copy()) is None  # other query items
    LongTermCache(max_bytes=size - 1).put(0, "r1", items, parts[0])  # larger than the bound: not kept


def test_the_strongest_entry_is_the_first_in_query_order_among_equals():
    part = long_term_part(np.array([5, 2, 5, 5]), np.array([0.5, 0.1, 0.7, 0.7]), np.array([0, 0, 1, 2]))
    assert part.items.tolist() == [2, 5] and part.source.tolist() == [0, 1]
    np.testing.assert_allclose(part.sums, [0.1, 1.9])
    np.testing.assert_allclose(part.best, [0.1, 0.7])


def test_a_returning_users_request_on_redis_is_one_script_call_or_none(shop, redis_server, tmp_path):
    """One READ when the process cannot trust invalidation pushes (online/redis/pushes.py), none
    when it can and nothing changed."""
    engine = Engine(Settings.load(tmp_path, state_url=redis_server.url, state_namespace=redis_server.namespace()))
    try:
        engine.put_items(shop.items)
        engine.ingest(as_events(shop.events.iloc[:1500]))
        scripts = engine.state.scripts
        calls = []
        for name in ("read", "rows"):
            script = getattr(scripts, name)
            setattr(scripts, name, lambda *a, _s=script, _n=name, **k: calls.append(_n) or _s(*a, **k))
        user = shop.events["user_id"].iloc[0]
        first = engine.recommend(user, 10).items
        calls.clear()
        again = engine.recommend(user, 10).items
        assert calls == [] and [r.to_dict() for r in again] == [r.to_dict() for r in first]
        engine.state.push_generation = lambda open_channel=True: None  # pushes in doubt (channel down)
        again = engine.recommend(user, 10).items
        assert calls == ["read"] and [r.to_dict() for r in again] == [r.to_dict() for r in first]
    finally:
        engine.close()


def test_the_setting_is_checked(tmp_path):
    with pytest.raises(ValueError, match="long_term_cache_mb"):
        Settings.load(tmp_path, long_term_cache_mb=-1)
    engine = Engine(Settings.load(tmp_path, long_term_cache_mb=0))
    try:
        assert engine.service.models.item_knn.long_term_cache is None
    finally:
        engine.close()


def test_the_sparse_and_dense_builds_of_a_part_are_equal(monkeypatch):
    from pulserec.models import long_term_cache

    rng = np.random.default_rng(4)
    for entries, width in ((1_400, 100_000), (50, 2_000), (3_000, 3_000)):
        idx = rng.integers(0, width, entries)
        idx[0] = width - 1
        sims = np.round(rng.random(entries), 2)  # ties: the first in query order is the source
        sims[rng.integers(0, entries, 3)] = -np.inf  # entries that never count
        src = np.sort(rng.integers(0, 40, entries))
        parts = []
        for below in (10 ** 9, 0):  # always sparse, always dense
            monkeypatch.setattr(long_term_cache, "SPARSE_BELOW", below)
            parts.append(long_term_cache.long_term_part(idx, sims, src))
        for sparse, dense in zip(*parts):
            assert sparse.dtype == dense.dtype and sparse.tobytes() == dense.tobytes()
