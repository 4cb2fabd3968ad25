import numpy as np
import pytest

from pulserec.online.cooccurrence import CoOccurrence
from pulserec.online.history import Histories, Touch


def random_log(seed=0, n=600, users=15, items=40):
    rng = np.random.default_rng(seed)
    owners = rng.integers(0, users, n)
    items_ = rng.integers(0, items, n)
    weights = rng.choice([1.0, 2.0, 8.0], n)
    ts = np.sort(rng.uniform(0, 10 * 86_400, n))
    return owners, items_, weights, ts


def incremental(owners, items, weights, ts, window=5, min_delta=50):
    cooc = CoOccurrence(window, 86_400.0, min_delta=min_delta)
    hist = Histories(50)
    for o, i, w, t in zip(owners, items, weights, ts):
        recent = hist.recent(int(o))
        cooc.add_event(int(i), float(w), float(t), list(recent)[-window:][::-1])
        hist.add(int(o), Touch(int(i), float(w), float(t), "view"))
    return cooc


def dense(cooc, n):
    return np.stack([np.bincount(*cooc.row(i), minlength=n)[:n] if len(cooc.row(i)[0]) else np.zeros(n) for i in range(n)])


def test_incremental_updates_equal_the_vectorised_log_build():
    log = random_log()
    inc = incremental(*log)
    batch = CoOccurrence(5, 86_400.0)
    batch.add_log(*log)
    np.testing.assert_allclose(dense(inc, 40), dense(batch, 40), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(inc.degree[:40], batch.degree[:40], rtol=1e-9)


def test_compaction_keeps_every_pair():
    log = random_log(1)
    small = incremental(*log, min_delta=10)  # compacts often
    big = incremental(*log, min_delta=10**9)  # never compacts
    assert big.base.nnz == 0 and small.base.nnz > 0
    np.testing.assert_allclose(dense(small, 40), dense(big, 40), rtol=1e-9, atol=1e-12)


def test_pairs_are_symmetric_and_exclude_self_and_other_users():
    cooc = CoOccurrence(10, 86_400.0)
    cooc.add_log(np.array([0, 0, 1]), np.array([1, 2, 3]), np.ones(3), np.array([0.0, 0.0, 0.0]))
    m = dense(cooc, 4)
    assert m[1, 2] == pytest.approx(1.0) and m[2, 1] == pytest.approx(1.0)
    assert m[1, 3] == 0 and np.trace(m) == 0


def test_gap_decay_weakens_distant_pairs():
    cooc = CoOccurrence(10, 86_400.0)
    cooc.add_log(np.array([0, 0, 1, 1]), np.array([1, 2, 1, 3]), np.ones(4), np.array([0.0, 60.0, 0.0, 5 * 86_400.0]))
    m = dense(cooc, 4)
    assert m[1, 2] > 0.99 and m[1, 3] == pytest.approx(np.exp(-5), rel=1e-6)


def test_subtracting_an_owners_log_removes_exactly_their_pairs():
    owners, items, weights, ts = random_log(2)
    full = CoOccurrence(5, 86_400.0)
    full.add_log(owners, items, weights, ts)
    keep = owners != 3
    expected = CoOccurrence(5, 86_400.0)
    expected.add_log(owners[keep], items[keep], weights[keep], ts[keep])
    gone = ~keep
    full.add_log(owners[gone], items[gone], weights[gone], ts[gone], sign=-1.0)
    np.testing.assert_allclose(dense(full, 40), dense(expected, 40), atol=1e-9)
    np.testing.assert_allclose(full.degree[:40], expected.degree[:40], atol=1e-9)


def test_a_log_applied_in_chunks_equals_the_whole_log():
    """Pairs that straddle two bulk chunks are made once the second chunk arrives."""
    from pulserec.config import Settings
    from pulserec.online.state import OnlineState
    import pandas as pd

    owners, items, weights, ts = random_log(3, n=900)
    frame = pd.DataFrame({"event_id": [f"e{i}" for i in range(len(items))], "user_id": [f"u{o}" for o in owners],
                          "item_id": [f"i{i}" for i in items], "type": "view", "ts": ts, "value": None,
                          "session_id": None, "query": None, "context": None, "rec_id": None})
    whole, chunked = OnlineState(Settings(cooc_window=5)), OnlineState(Settings(cooc_window=5))
    whole.apply_frame(frame)
    for start in range(0, len(frame), 137):
        chunked.apply_frame(frame.iloc[start:start + 137])
    order = [whole.catalog.item_ids.get(f"i{i}") for i in range(40)]
    remap = [chunked.catalog.item_ids.get(f"i{i}") for i in range(40)]
    np.testing.assert_allclose(dense(chunked.cooc, 40)[np.ix_(remap, remap)], dense(whole.cooc, 40)[np.ix_(order, order)],
                               rtol=1e-9, atol=1e-12)


def test_pruned_scoring_rows_keep_each_items_strongest_neighbours():
    from pulserec.online.cooccurrence import prune_rows

    log = random_log(4)
    full = CoOccurrence(5, 86_400.0)
    full.add_log(*log)
    pruned = CoOccurrence(5, 86_400.0, top_k=3)
    pruned.add_log(*log)
    matrix = prune_rows(full.base, full.degree, 3)
    assert np.diff(matrix.indptr).max() == 3
    for item in range(40):
        idx, sims = full.similar_row(item)
        kept, kept_sims = pruned.similar_row(item)
        assert len(kept) == min(3, len(idx))
        assert np.allclose(np.sort(kept_sims)[::-1], np.sort(sims)[::-1][: len(kept)])
        assert np.array_equal(np.sort(pruned.row(item)[0]), np.sort(full.row(item)[0]))  # storage stays exact


def test_similar_rows_of_a_history_with_items_that_have_no_pairs_yet():
    """A history may hold items the co-occurrence has never sized for (no pair yet): they add no
    rows, and the other items' rows are read and normalised as one at a time would."""
    cooc = CoOccurrence(window=20, gap_tau=1e5)
    cooc.add_event(1, 1.0, 10.0, [Touch(2, 1.0, 5.0, "view")])
    unseen = len(cooc.degree) + 100
    idx, sims, src = cooc.similar_rows([1, unseen, 2])
    assert idx.tolist() == [2, 1] and src.tolist() == [0, 2]
    for position, item in ((0, 1), (2, 2)):  # cosine: raw weight / sqrt(degree x degree)
        raw_idx, raw = cooc.row(item)
        assert raw_idx.tolist() == idx[src == position].tolist()
        np.testing.assert_allclose(sims[src == position], raw / np.sqrt(cooc.degree[item] * cooc.degree[raw_idx]))
    assert len(cooc.similar_row(unseen)[0]) == 0


def test_bounded_rows_keep_their_heaviest_neighbours():
    rng = np.random.default_rng(4)
    owners, items = rng.integers(0, 40, 3000), rng.integers(0, 60, 3000)
    weights, ts = np.ones(3000), np.sort(rng.random(3000)) * 86_400
    full, bounded = CoOccurrence(10, 3 * 86_400.0), CoOccurrence(10, 3 * 86_400.0, max_neighbours=5)
    for cooc in (full, bounded):
        cooc.add_log(owners, items, weights, ts)
    counts = np.diff(bounded.base.indptr)
    assert counts.max() == 5 and bounded.base.nnz < full.base.nnz
    for item in range(60):
        kept_idx, kept = bounded.row(item)
        _, every = full.row(item)
        assert sorted(kept.tolist(), reverse=True) == sorted(every.tolist(), reverse=True)[: len(kept)]
        assert set(kept_idx.tolist()) <= set(full.row(item)[0].tolist())
    np.testing.assert_allclose(bounded.degree, full.degree)  # cosine normalisation sees every pair
    bounded.add_log(owners[owners == 3], items[owners == 3], weights[owners == 3], ts[owners == 3], sign=-1.0)
    assert (bounded.base.data >= 0).all()  # evicted pairs of a forgotten user do not go negative


def test_small_bulk_updates_are_read_from_the_middle_level_until_folded():
    big, small = random_log(2), tuple(column[:40] for column in random_log(3))
    two_levels = CoOccurrence(5, 86_400.0)
    two_levels.add_log(*big)  # an empty base: the first update goes straight into it
    base_nnz = two_levels.base.nnz
    two_levels.add_log(*small)  # far below a quarter of the base: it waits in the middle level
    assert two_levels.base.nnz == base_nnz and two_levels.mid.nnz > 0
    reference = CoOccurrence(5, 86_400.0)
    for log in (big, small):
        reference.add_log(*log)
        reference.compact()
    np.testing.assert_allclose(dense(two_levels, 40), dense(reference, 40), rtol=1e-12, atol=1e-12)
    assert two_levels.nnz == base_nnz + two_levels.mid.nnz
    two_levels.compact()
    assert two_levels.mid.nnz == 0 and two_levels.base.nnz == reference.base.nnz


def shop_frame(log):
    import pandas as pd

    owners, items, weights, ts = log
    return pd.DataFrame({"user_id": [f"u{o}" for o in owners], "item_id": [f"i{i}" for i in items], "type": "view",
                         "ts": 1.7e9 + ts, "session_id": None, "query": None, "context": None, "value": None,
                         "dwell_seconds": None, "event_id": [f"e{k}" for k in range(len(owners))], "rec_id": None})


def test_a_bulk_load_folds_once_its_added_entries_pass_a_quarter_of_the_base_plus_the_cap():
    """A fold comes when the entries added since the last one pass `base // 4 + mid_cap` (cut
    at the event that passes it), and at the end."""
    log = random_log(4, n=3000, users=60, items=80)
    bulk = CoOccurrence(5, 86_400.0, max_neighbours=6, mid_cap=400)
    folds, waited = 0, False
    for start in range(0, 3000, 100):
        base = bulk.base
        bulk.add_log(*(column[start:start + 100] for column in log))
        folds += bulk.base is not base
        assert bulk._mid_added <= bulk.base.nnz // 4 + 400  # folded whenever it passed
        waited |= bulk._mid_added > bulk.base.nnz // 4  # where a quarter would have folded it
    assert waited and 2 <= folds < 30
    bulk.compact()
    assert bulk.mid.nnz == 0 and np.diff(bulk.base.indptr).max() <= 6


@pytest.mark.parametrize("cap", [10**9, 2_000])
def test_what_a_bounded_bulk_load_keeps_does_not_depend_on_its_chunk_size(tmp_path, cap):
    """The folds fall on the same events however the load is chunked (a chunk is cut where the
    entries added pass the mark): a load that never reaches the cap folds once at its end, one
    that folds on the way (61 times in 50-event chunks here) keeps the same pairs in chunks of
    50, 300 or 4,000 events. (The last session's rule, 4x the base at each chunk's end, folded
    after the first chunk of an empty state: 50-event chunks evicted at 50, 250, ... events.)"""
    from pulserec.config import Settings
    from pulserec.online.state import OnlineState

    frame = shop_frame(random_log(7, n=4000, users=50, items=120))
    bases = {}
    for chunk in (50, 300, 4000):
        state = OnlineState(Settings(data_dir=tmp_path, cooc_max_neighbours=8))
        state.cooc.mid_cap = cap
        for start in range(0, len(frame), chunk):
            state.apply_frame(frame.iloc[start:start + chunk])
        state.end_bulk()
        assert state.cooc.mid.nnz == 0 and np.diff(state.cooc.base.indptr).max() <= 8
        bases[chunk] = state.cooc.base
    kept = {chunk: set(zip(*base.nonzero())) for chunk, base in bases.items()}
    assert kept[50] == kept[300] == kept[4000]
    for chunk in (50, 300):
        np.testing.assert_allclose(bases[chunk].toarray(), bases[4000].toarray(), rtol=1e-9, atol=1e-12)


def test_eviction_with_a_half_life_drops_neighbours_nobody_touches_any_more():
    # Item 0 pairs with 1..6: items 1-3 heavily but only on day 0, items 4-6 lightly on day 300.
    owners, items, ts = [], [], []
    for user in range(30):
        for item, day in ((0, 0), (1, 0), (2, 0), (3, 0)) if user < 20 else ((0, 300), (4, 300), (5, 300), (6, 300)):
            owners.append(user)
            items.append(item)
            ts.append(day * 86_400.0 + user)
    log = np.array(owners), np.array(items), np.ones(len(items)), np.array(ts)
    by_weight = CoOccurrence(10, 86_400.0, max_neighbours=3)
    by_decay = CoOccurrence(10, 86_400.0, max_neighbours=3, evict_halflife=30 * 86_400.0)
    for cooc in (by_weight, by_decay):
        cooc.add_log(*log)
        cooc.compact()
    assert sorted(by_weight.row(0)[0].tolist()) == [1, 2, 3]  # the heaviest, however old
    assert sorted(by_decay.row(0)[0].tolist()) == [4, 5, 6]  # the ones still being touched
    assert by_decay.last_seen[0] == by_decay.last_seen[4] == 300 * 86_400.0 + 29


@pytest.mark.parametrize("name, value", [("cooc_max_neighbours", -1), ("cooc_evict_halflife", -1.0),
                                         ("cooc_evict_halflife", float("inf"))])
def test_bound_settings_are_validated(tmp_path, name, value):
    from pulserec.config import Settings

    with pytest.raises(ValueError, match=name):
        Settings.load(tmp_path, **{name: value})


@pytest.mark.parametrize("top_k", [0, 3])
def test_the_gathered_read_of_many_rows_equals_the_row_by_row_read(top_k):
    """similar_rows gathers base, middle and delta levels at once; it must give exactly what the
    generic per-row read gives (same entries, same order, so scores and ties are unchanged)."""
    from pulserec.online.cooccurrence import RowReader

    big, small, live = random_log(4), tuple(column[:40] for column in random_log(5)), random_log(6, n=60)
    cooc = CoOccurrence(5, 86_400.0, top_k=top_k)
    cooc.add_log(*big)
    cooc.add_log(*small)  # waits in the middle level
    hist = Histories(50)
    for o, i, w, t in zip(*live):  # per-event pairs wait in the delta level
        cooc.add_event(int(i), float(w), float(t), list(hist.recent(int(o)))[-5:][::-1])
        hist.add(int(o), Touch(int(i), float(w), float(t), "view"))
    assert cooc.base.nnz and cooc.mid.nnz and cooc.delta.nnz
    items = [3, 0, 39, 7, 7, 55, 12, 1000, 21]  # repeats and items past every level's end included
    fast, generic = cooc.similar_rows(items), RowReader.similar_rows(cooc, items)
    for got, want in zip(fast, generic):
        np.testing.assert_array_equal(got, want)
    assert all(len(part) == 0 for part in cooc.similar_rows([1000, 2000]))
    cooc.seal()  # a sealed level too, under the delta of the next events
    for o, i, w, t in zip(*random_log(7, n=30)):
        cooc.add_event(int(i), float(w), float(t), list(hist.recent(int(o)))[-5:][::-1])
        hist.add(int(o), Touch(int(i), float(w), float(t), "view"))
    assert cooc.sealed and cooc.delta.nnz
    for item in (*items, 2000):  # similar items reads one row: the same entries in the same order
        one, many = cooc.similar_row(item), cooc.similar_rows([item])
        assert one[0].dtype == many[0].dtype
        np.testing.assert_array_equal(one[0], many[0])
        assert one[1].tobytes() == many[1].tobytes()


@pytest.mark.parametrize("rounding", [None, 1])
def test_strongest_keeps_what_a_sort_by_row_and_score_keeps(rounding):
    """The partition-based selection equals a stable lexsort by (row, -score): rows under, at
    and far over k (several padding widths), empty rows, and many ties (scores rounded to one
    decimal), which go to the earlier entry."""
    import scipy.sparse as sp

    from pulserec.online.cooccurrence import strongest

    rng = np.random.default_rng(3)
    n, k = 300, 20
    counts = rng.choice([0, 5, 20, 21, 40, 150, 299], n)
    rows = np.repeat(np.arange(n), counts)
    cols = np.concatenate([np.sort(rng.choice(n, c, replace=False)) for c in counts])
    matrix = sp.csr_matrix((rng.random(len(rows)) + 0.01, (rows, cols)), shape=(n, n))
    scores = matrix.data * np.exp2(-rng.random(matrix.nnz))
    if rounding is not None:
        scores = np.round(scores, rounding)
    order = np.lexsort((-scores, rows))
    rank = np.arange(matrix.nnz) - matrix.indptr[rows[order]]
    expected = np.sort(order[rank < k])
    kept = strongest(matrix, k, scores)
    assert np.array_equal(kept.indptr, np.r_[0, np.cumsum(np.minimum(counts, k))])
    assert np.array_equal(kept.indices, matrix.indices[expected])
    assert np.array_equal(kept.data, matrix.data[expected])
    assert strongest(matrix, 299, scores) is matrix  # no row over k: nothing to do


def test_sealed_delta_levels_read_and_fold_like_one_delta():
    """A background snapshot seals the delta (`seal`) and reads it without the lock: reads,
    the entries it sees and the compaction are those of one unsealed delta."""
    log = random_log(seed=4, n=900)
    plain = incremental(*log, min_delta=10**9)  # everything stays in the delta
    sealed = CoOccurrence(5, 86_400.0, min_delta=10**9)
    hist = Histories(50)
    levels = []
    for k, (o, i, w, t) in enumerate(zip(*log)):
        sealed.add_event(int(i), float(w), float(t), list(hist.recent(int(o)))[-5:][::-1])
        hist.add(int(o), Touch(int(i), float(w), float(t), "view"))
        if k in (200, 500):
            levels = sealed.seal()
            assert len(sealed.seal()) == len(levels)  # the delta is empty: nothing more to seal
    assert len(levels) == 2 and len(sealed.sealed) == 2 and sealed.delta and sealed.nnz == plain.nnz
    np.testing.assert_allclose(dense(sealed, 40), dense(plain, 40), rtol=1e-12)
    for item in range(40):
        np.testing.assert_array_equal(sealed.row(item)[0], plain.row(item)[0])
    got = np.concatenate([step for level in levels for step in level.peek_entries()])
    assert len(got) == sum(level.nnz for level in levels)
    before = sp_dense(got, 40)
    levels[0].get(int(got["row"][0]))  # a reader settles a row: what a peek sees is unchanged
    np.testing.assert_array_equal(sp_dense(np.concatenate(list(levels[0].peek_entries())), 40),
                                  sp_dense(np.concatenate(list(levels[0].peek_entries())), 40))
    np.testing.assert_allclose(sp_dense(np.concatenate([s for lv in levels for s in lv.peek_entries()]), 40), before)
    sealed.compact(), plain.compact()
    assert not sealed.sealed and not sealed.delta
    np.testing.assert_allclose(sealed.base.toarray(), plain.base.toarray(), rtol=1e-12)


def sp_dense(entries, n):
    out = np.zeros((n, n))
    np.add.at(out, (entries["row"], entries["col"]), entries["weight"])
    return out


def test_pending_delta_entries_are_no_objects_the_collector_walks():
    """The per-event path appends pairs to the delta's pending buffers: typed arrays, so a full
    collection of the cyclic GC visits nothing in them (at 10M events the delta holds millions
    of entries: lists of Python numbers made a writer's full collection take 75 ms; issue 17.1).
    The rows still read every pair, pending or settled."""
    import gc

    cooc = CoOccurrence(window=5, gap_tau=3600.0, min_delta=10**9)
    histories = Histories(50)
    for k in range(300):
        owner, item = k % 7, (k * 13) % 40
        cooc.add_event(item, 1.0, float(k), reversed(histories.latest(owner, 5)))
        histories.add(owner, Touch(item, 1.0, float(k), "view"))
    entries = list(cooc.delta._rows.values())
    assert cooc.delta.nnz and any(len(entry[3]) for entry in entries)  # some pairs are still pending
    visited = [gc.get_referents(part) for entry in entries for part in entry[3:]]
    assert all(len(refs) <= 1 and not any(isinstance(r, (int, float)) for r in refs) for refs in visited)  # its type, at most
    total = sum(cooc.delta.get(row)[1].sum() for row in list(cooc.delta._rows))
    assert total == pytest.approx(cooc.degree.sum())


def test_an_import_and_a_full_replay_keep_the_same_bounded_pairs(tmp_path, monkeypatch):
    """`pulserec import` (350-event chunks through the writer) and a start's full replay of the
    same log (the store's frames) fold at the same events: the same pairs are kept."""
    from pulserec.config import Settings
    from pulserec.engine import Engine
    from pulserec.online import state as state_module

    monkeypatch.setattr(state_module, "BULK_MID_CAP", 2_000)  # folds on the way, as a large shop's
    settings = Settings(data_dir=tmp_path / "d", cooc_max_neighbours=8)
    engine = Engine(settings)
    try:
        engine.ingest_frames([shop_frame(random_log(9, n=3000, users=40, items=100))], chunk=350, use_process=False)
        imported = engine.state.cooc
        replayed = state_module.OnlineState(settings)
        replayed.load(engine.store)
    finally:
        engine.close()
    assert imported.mid.nnz == 0 and replayed.cooc.mid.nnz == 0
    assert set(zip(*imported.base.nonzero())) == set(zip(*replayed.cooc.base.nonzero()))
    np.testing.assert_allclose(imported.base.toarray(), replayed.cooc.base.toarray(), rtol=1e-9, atol=1e-12)
