"""Exploration: Thompson sampling over low-exposure items, and exposure read from a real store."""

from __future__ import annotations

import numpy as np

from pulserec.events import Event
from pulserec.recommend.exploration import Exposure, explore


def test_explore_takes_its_share_of_organic_slots_only():
    rng = np.random.default_rng(0)
    picks = np.array([0, 1, 2, 3, 4])
    labels = [None, "promo", None, None, None]
    mask = np.ones(20, dtype=bool)
    shown = np.zeros(20, dtype=np.int64)
    shown[:10] = 500  # the first ten are well known
    out, out_labels, explored = explore(picks, labels, mask, 5, 0.4, shown, np.zeros(20, dtype=np.int64), 100, rng)
    assert len(out) == 5 and len(explored) == 2 and all(i >= 10 for i in explored)
    assert "promo" in out_labels and 1 in out.tolist()  # the promoted pick stays
    assert 4 not in out.tolist() and 3 not in out.tolist()  # the last organic picks made room
    assert [out.tolist()[i] in explored for i in range(5)] == [False, True, False, True, False]


def test_sampling_prefers_items_that_get_clicked_and_fades_ignored_ones():
    rng = np.random.default_rng(1)
    mask = np.ones(3, dtype=bool)
    shown = np.array([60, 60, 0])
    clicked = np.array([30, 0, 0])  # item 0: CTR 0.5, item 1: shown 60 times, never clicked
    wins = np.zeros(3)
    for _ in range(400):
        _, _, explored = explore(np.empty(0, dtype=np.int64), [], mask, 1, 1.0, shown, clicked, 100, rng)
        wins[list(explored)] += 1
    assert wins[1] < 10 and wins[0] > 100 and wins[2] > 100
    assert explore(np.empty(0, dtype=np.int64), [], mask, 1, 1.0, np.full(3, 100), clicked, 100, rng)[2] == set()
    assert explore(np.array([0]), [None], mask, 1, 0.4, shown, clicked, 100, rng)[2] == set()  # 0.4 of 1 is 0 slots


def test_exposure_counts_impressions_and_clicks_on_shown_items_once(engine):
    feedback = engine.feedback
    exposure = Exposure(feedback)
    feedback.add_impression("r1", "u", None, "default", None, None, ["a", "b"], 1.0)
    feedback.add_impression("r2", "u", None, "default", None, None, ["a"], 2.0)
    engine.ingest([Event("c1", "u", "a", "click", 3.0, rec_id="r1"), Event("c2", "u", "a", "click", 4.0, rec_id="r1"),
                   Event("c3", "u", "c", "click", 5.0, rec_id="r1"), Event("c4", "u", "b", "view", 6.0)])
    exposure.refresh(force=True)
    assert exposure.impressions == {"a": 2, "b": 1} and exposure.clicks == {"a": 1}  # c not shown, c4 no rec id
    engine.ingest([Event("c5", "u", "a", "purchase", 7.0, rec_id="r2")])
    exposure.refresh(force=True)
    assert exposure.clicks == {"a": 2}
    engine.delete_user("u")
    exposure.refresh(force=True)
    assert exposure.impressions == {} and exposure.clicks == {}  # rebuilt without the forgotten user


def test_exposure_arrays_follow_new_counts_and_new_items(engine):
    from pulserec.records import ItemRecord

    engine.put_items([ItemRecord("a"), ItemRecord("b")])
    exposure = Exposure(engine.feedback)
    catalog = engine.state.catalog
    engine.feedback.add_impression("r1", "u", None, "default", None, None, ["a", "z"], 1.0)
    exposure.refresh(force=True)
    shown, clicked = exposure.arrays(catalog)
    assert shown.tolist() == [1, 0] and clicked.tolist() == [0, 0]
    engine.ingest([Event("c1", "u", "a", "click", 2.0, rec_id="r1")])
    engine.put_items([ItemRecord("z")])  # known now: its earlier impression is placed
    exposure.refresh(force=True)
    shown, clicked = exposure.arrays(catalog)
    ids = catalog.item_ids
    assert shown[ids.get("a")] == 1 and clicked[ids.get("a")] == 1 and shown[ids.get("z")] == 1 and shown[ids.get("b")] == 0
