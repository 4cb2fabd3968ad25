"""Replay evaluation: online learning must beat a frozen model on a stream with planted structure."""

import numpy as np

from pulserec.evaluation.replay import replay
from pulserec.evaluation.replay_report import write_replay_report


def test_online_beats_static_and_scores_are_consistent(shop, tmp_path):
    frame = shop.events.assign(session_id=None, context=None, rec_id=None)
    static = replay(frame, shop.items, "static", warmup=0.3, max_evaluations=400)
    online = replay(frame, shop.items, "online", warmup=0.3, max_evaluations=400)
    assert len(static.hits) > 100 and len(online.hits) > 100
    assert online.hit_rate > 1.2 * static.hit_rate
    assert np.all(online.ndcg <= online.hits)  # NDCG is 0 exactly when there is no hit, and <= 1
    paths = write_replay_report([static, online], tmp_path / "r")
    text = (tmp_path / "r" / "replay.md").read_text()
    assert "| online |" in text and "vs static" in text
    assert any(p.suffix == ".png" for p in paths)


def test_the_fair_baseline_is_rebuilt_every_n_events(shop):
    """'retrained' rebuilds the state from the log so far every N events and does not learn in
    between: it sits between the frozen model and the online one, and counts its rebuilds."""
    frame = shop.events.assign(session_id=None, context=None, rec_id=None)
    kwargs = dict(warmup=0.3, max_evaluations=400, retrain_every=300)
    static = replay(frame, shop.items, "static", **kwargs)
    retrained = replay(frame, shop.items, "retrained", **kwargs)
    online = replay(frame, shop.items, "online", **kwargs)
    assert retrained.retrains == int(len(frame) * 0.7) // 300
    assert np.array_equal(retrained.positions, static.positions)  # the same events are judged
    assert static.hit_rate < retrained.hit_rate <= online.hit_rate
