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
