"""Profiles as columns (`ProfileTable`): bulk folds, single events, merges and erasure give
exactly the profile that per-event `UserProfile.update` builds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pulserec.ids import IdIndex
from pulserec.profiles import item_codes, keyed
from pulserec.profiles.keyed import KeyedTable, keys_of
from pulserec.profiles.profile import DecayedCounter, UserProfile
from pulserec.profiles.table import ProfileTable
from pulserec.records import ItemRecord

HALFLIFE = 7 * 86_400.0
TYPES = ("view", "click", "add_to_cart", "purchase", "search")
WEIGHTS = dict(zip(TYPES, (1.0, 2.0, 3.0, 5.0, 0.5)))


@pytest.fixture
def log():
    """2,000 events of 40 owners over 60 days: items with categories and tags, contexts, queries."""
    rng = np.random.default_rng(5)
    records = [ItemRecord(item_id=f"i{i}", category=None if i % 7 == 0 else f"c{i % 5}",
                          tags=tuple(f"t{(i + k) % 9}" for k in range(i % 4))) for i in range(30)]
    n = 2000
    owners = rng.integers(0, 40, n)
    types = rng.choice(TYPES, n)
    items = np.where(types == "search", -1, rng.integers(0, 30, n))
    ts = np.sort(1.7e9 + rng.uniform(0, 60 * 86_400, n))
    ts[::50] -= 5 * 86_400  # late events: older than what the owner already has
    contexts = np.array([None if k % 6 == 0 else json.dumps({"device": ["mobile", "desktop", "tablet"][k % 3],
                                                              **({"location": f"L{k % 4}"} if k % 5 else {})})
                         for k in range(n)], dtype=object)
    queries = np.array([f"q{k % 13}" if t == "search" else None for k, t in enumerate(types)], dtype=object)
    return records, owners, types, items, ts, contexts, queries


def reference(log) -> dict[int, UserProfile]:
    records, owners, types, items, ts, contexts, queries = log
    out: dict[int, UserProfile] = {}
    for k in range(len(owners)):
        owner = int(owners[k])
        profile = out.setdefault(owner, UserProfile(f"u{owner}", HALFLIFE))
        record = records[items[k]] if items[k] >= 0 else None
        profile.update(str(types[k]), WEIGHTS[types[k]], float(ts[k]), record.category if record else None,
                       record.tags if record else (), json.loads(contexts[k]) if contexts[k] else None, queries[k])
    return out


def table_of(batches, log) -> ProfileTable:
    """A table fed `log` in slices: ("bulk", a, b) through fold, ("each", a, b) event by event."""
    records, owners, types, items, ts, contexts, queries = log
    table = ProfileTable(HALFLIFE, name_of=lambda owner: f"u{owner}")
    weights = np.array([WEIGHTS[t] for t in types])
    for how, a, b in batches:
        if how == "bulk":
            table.fold(owners[a:b], types[a:b], weights[a:b], ts[a:b], items[a:b], records, contexts[a:b], queries[a:b])
            continue
        for k in range(a, b):
            record = records[items[k]] if items[k] >= 0 else None
            table.update(int(owners[k]), str(types[k]), float(weights[k]), float(ts[k]), record.category if record else None,
                         record.tags if record else (), json.loads(contexts[k]) if contexts[k] else None, queries[k])
    return table


def assert_profiles(table: ProfileTable, expected: dict[int, UserProfile]) -> None:
    assert len(table) == len(expected)
    for owner, profile in expected.items():
        got = table.get(owner).to_state()
        want = profile.to_state()
        for name in ("categories", "tags"):
            assert got[name].keys() == want[name].keys(), (owner, name)
            for key, (value, at) in want[name].items():
                assert got[name][key] == pytest.approx([value, at], rel=1e-9), (owner, name, key)
        others = {k: v for k, v in got.items() if k not in ("categories", "tags")}
        assert others == {k: v for k, v in want.items() if k not in ("categories", "tags")}, owner
        assert table.get(owner).to_dict(1.8e9) == profile.to_dict(1.8e9) or _same_but_rounding(table, owner, profile)
        assert table.search_mark(owner) == profile.search_mark(), owner  # read from the columns alone
    assert table.search_mark(10**6) is None


def _same_but_rounding(table, owner, profile) -> bool:
    got, want = table.get(owner).to_dict(1.8e9), profile.to_dict(1.8e9)
    return {k: v for k, v in got.items() if k != "interests"} == {k: v for k, v in want.items() if k != "interests"}


@pytest.mark.parametrize("batches", [
    [("bulk", 0, 2000)],
    [("each", 0, 2000)],
    [("bulk", 0, 700), ("each", 700, 1100), ("bulk", 1100, 1500), ("each", 1500, 2000)],
])
def test_columns_equal_per_event_profiles(log, batches, monkeypatch):
    monkeypatch.setattr(keyed, "SETTLE_AT", 37)  # single events settle in many small batches
    monkeypatch.setattr(KeyedTable, "delta_limit", lambda self: 25)  # and the delta merges often
    assert_profiles(table_of(batches, log), reference(log))


def test_single_events_merge_the_delta_past_its_live_limit_and_bulk_adds_past_delta_limit(monkeypatch):
    """A settle of single events copies the whole delta (np.insert), inside one event: past
    LIVE_DELTA entries it merges the delta instead (issue 17.1), while a bulk batch may fill it
    up to delta_limit. Every owner reads as in a table that never merges."""
    monkeypatch.setattr(keyed, "SETTLE_AT", 10)
    monkeypatch.setattr(KeyedTable, "delta_limit", lambda self: 400)
    rng = np.random.default_rng(3)
    keys = (rng.integers(0, 30, 900).astype(np.int64) << 32) | rng.integers(0, 40, 900)
    ts = np.sort(rng.random(900)) * 1000

    def fill(live_delta: int) -> tuple[KeyedTable, int, int]:
        monkeypatch.setattr(keyed, "LIVE_DELTA", live_delta)
        table = KeyedTable(HALFLIFE)
        table.add(keys[:300], np.ones(300), ts[:300])  # bulk: kept in the delta
        after_bulk, biggest = len(table.delta[0]), 0
        for key, t in zip(keys[300:].tolist(), ts[300:].tolist()):
            table.add_one(key, 1.0, t)
            if not table._pending[0]:  # just settled
                biggest = max(biggest, len(table.delta[0]))
        return table, after_bulk, biggest

    never, _, unbounded = fill(10**9)
    table, after_bulk, biggest = fill(50)
    assert after_bulk > 50 and unbounded > 300  # the bulk batch stayed in the delta; without the limit it grows
    assert biggest <= 50  # every settle past the live limit merged
    for owner in range(30):
        (codes, values, times), (codes_n, values_n, times_n) = table.of(owner), never.of(owner)
        np.testing.assert_array_equal(codes, codes_n)
        np.testing.assert_allclose(values, values_n, rtol=1e-12)
        np.testing.assert_allclose(times, times_n, rtol=1e-12)


def test_a_replaced_record_folds_with_its_new_category_and_tags(log, monkeypatch):
    """The bulk fold keeps each item's codes as arrays: a catalogue upsert between two folds (a
    new record object) must be folded with the new record's names, and the tag buffer, repacked
    as replaced records leave their old codes behind, must keep every live item's tags."""
    monkeypatch.setattr(item_codes, "START", 4)
    records, owners, types, items, ts, contexts, queries = log
    weights = np.array([WEIGHTS[t] for t in types])
    table = ProfileTable(HALFLIFE, name_of=lambda owner: f"u{owner}")
    expected: dict[int, UserProfile] = {}
    current = list(records)
    for round_no, (a, b) in enumerate(((0, 500), (500, 1000), (1000, 1500), (1500, 2000))):
        table.fold(owners[a:b], types[a:b], weights[a:b], ts[a:b], items[a:b], current, contexts[a:b], queries[a:b])
        for k in range(a, b):
            profile = expected.setdefault(int(owners[k]), UserProfile(f"u{owners[k]}", HALFLIFE))
            record = current[items[k]] if items[k] >= 0 else None
            profile.update(str(types[k]), WEIGHTS[types[k]], float(ts[k]), record.category if record else None,
                           record.tags if record else (), json.loads(contexts[k]) if contexts[k] else None, queries[k])
        current = [ItemRecord(item_id=r.item_id, category=f"new{round_no}-{i % 3}" if i % 2 else r.category,
                              tags=tuple(f"r{round_no}-{i}-{j}" for j in range(i % 5))) for i, r in enumerate(current)]
    assert_profiles(table, expected)


def test_erased_owner_leaves_nothing_and_can_start_again(log, monkeypatch):
    monkeypatch.setattr(KeyedTable, "delta_limit", lambda self: 25)
    table = table_of([("bulk", 0, 1200), ("each", 1200, 1300)], log)
    victim = int(log[1][0])
    entries = sum(len(t) for t in table.keyed.values())
    table.forget(victim)
    assert victim not in table and table.get(victim) is None and len(table) == 39
    for keyed_table in table.keyed.values():
        codes, values, _ = keyed_table.of(victim)
        assert len(codes) == 0
        main_keys = keyed_table.main[0]
        erased = (main_keys >> 32) == victim
        assert not keyed_table.main[1][erased].any()  # values zeroed at once, before any merge
    assert table.counts[victim].sum() == 0 and table.dense["hours"][victim].sum() == 0
    for keyed_table in table.keyed.values():
        keyed_table.merge()
    assert sum(len(t) for t in table.keyed.values()) < entries  # the erased entries are gone
    table.update(victim, "view", 1.0, 1.71e9, "c1", ("t1",), {"device": "tv"}, None)
    again = table.get(victim).to_state()
    assert again["counts"] == {"view": 1} and again["devices"] == {"tv": 1} and list(again["categories"]) == ["c1"]


def test_searches_keep_the_last_ten_in_order():
    table = ProfileTable(HALFLIFE, name_of=str)
    for k in range(25):
        table.update(3, "search", 0.5, 1.7e9 + k, None, (), None, f"q{k}")
    owners = np.full(5, 3)
    table.fold(owners, np.array(["search"] * 5, dtype=object), np.full(5, 0.5), 1.7e9 + 30 + np.arange(5.0),
               np.full(5, -1), [], None, np.array([f"b{k}" for k in range(5)], dtype=object))
    table.keyed["searches"].merge()
    assert list(table.get(3).searches) == [f"q{k}" for k in range(20, 25)] + [f"b{k}" for k in range(5)]
    assert len(table.keyed["searches"]) == 10  # the log is trimmed at the merge


def test_keyed_table_refuses_unsorted_keys():
    table = KeyedTable()
    with pytest.raises(ValueError, match="not sorted"):
        table.load(keys_of(np.array([2, 1]), np.array([0, 0])), np.ones(2), np.zeros(2))


def test_names_come_from_the_owner_index():
    owners = IdIndex(["alice", "bob"])
    table = ProfileTable(HALFLIFE, name_of=owners.id_of)
    table.update(1, "view", 1.0, 1.7e9, None, (), None, None)
    assert table.get(1).user_id == "bob" and table.get(0) is None and 0 not in table and 1 in table


@pytest.mark.parametrize("missing", [None, "", float("nan")])
def test_a_missing_query_is_no_search_on_either_path(missing):
    """A pandas frame's empty query is NaN: the live path must read it as the bulk fold does."""
    live, bulk = ProfileTable(HALFLIFE, name_of=str), ProfileTable(HALFLIFE, name_of=str)
    live.update(0, "search", 0.5, 1.7e9, None, (), None, "shoes")
    live.update(0, "view", 1.0, 1.7e9 + 1, None, (), None, missing)
    bulk.fold(np.zeros(2, np.int64), np.array(["search", "view"], dtype=object), np.array([0.5, 1.0]),
              1.7e9 + np.arange(2.0), np.full(2, -1), [], None, np.array(["shoes", missing], dtype=object))
    assert list(live.get(0).searches) == list(bulk.get(0).searches) == ["shoes"]
    assert live.search_mark(0) == bulk.search_mark(0)


def _full_top(keys, values, times, now, rate, n):
    scores = values * np.exp(-np.maximum(now - times, 0.0) * rate)
    order = np.lexsort((np.array(keys, dtype=object), -scores))[:n]
    return [(keys[i], float(scores[i])) for i in order.tolist()]


@pytest.mark.parametrize("n", [0, 1, 3, 10, 59, 60, 61])
def test_top_from_columns_names_only_candidates_and_orders_as_a_full_sort(n):
    """Many equal scores around the n-th (ties by name), a NaN, either backing (dict or columns)."""
    rng = np.random.default_rng(n)
    names = IdIndex([f"k{i:02d}" for i in rng.permutation(60)])
    codes = np.arange(60)
    values = rng.choice([1.0, 2.0, 0.5], 60)
    times = np.where(rng.random(60) < 0.5, 1.7e9, 1.7e9 - 86_400.0)
    asked: list[list[int]] = []

    def names_of(indices):
        asked.append(indices)
        return names.ids_of(indices)

    keys, now = names.ids_of(codes.tolist()), 1.7e9 + 3600
    for vals in (values, np.where(codes == 7, np.nan, values)):
        asked.clear()
        column = DecayedCounter.from_columns(HALFLIFE, names_of, codes, vals, times)
        plain = DecayedCounter(HALFLIFE)
        plain.assign(dict(zip(keys, zip(vals.tolist(), times.tolist()))))
        want = _full_top(keys, vals, times, now, column.rate, n)
        assert repr(column.top(now, n)) == repr(plain.top(now, n)) == repr(want)  # NaN orders last
        scores = vals * np.exp(-np.maximum(now - times, 0.0) * column.rate)
        if 0 < n < 60 and not np.isnan(vals).any():  # named: only the scores up to the n-th's ties
            assert len(asked[0]) == int((scores >= np.sort(scores)[-n]).sum()) < 60 or n >= 59
        assert repr(column.to_state()) == repr(plain.to_state()) and len(column) == 60  # named in full when asked


def test_keyed_of_reads_live_entries_across_levels_and_erasure(monkeypatch):
    """`of` equals a dict of what was added: one level, both levels, after an erasure and re-adds."""
    monkeypatch.setattr(KeyedTable, "delta_limit", lambda self: 10**9)  # keep the delta apart
    table = KeyedTable()
    table.add(keys_of(np.array([1, 1, 2, 3]), np.array([5, 2, 9, 1])), np.array([1.0, 2.0, 3.0, 4.0]))
    table.merge()
    table.add(keys_of(np.array([2, 1]), np.array([4, 7])), np.array([5.0, 6.0]))  # delta: owners 1, 2
    assert [c.tolist() for c in table.of(1)[:2]] == [[2, 5, 7], [2.0, 1.0, 6.0]]
    assert [c.tolist() for c in table.of(3)[:2]] == [[1], [4.0]]  # main only
    table.erase(1)
    table.add(keys_of(np.array([1]), np.array([3])), np.array([8.0]))  # back after the erasure
    assert [c.tolist() for c in table.of(1)[:2]] == [[3], [8.0]]
    codes, values, _ = table.of(3)
    values[:] = -1.0  # a copy: the table keeps its own
    assert table.of(3)[1].tolist() == [4.0] and len(table.of(9)[0]) == 0
