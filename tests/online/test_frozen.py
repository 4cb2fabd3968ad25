"""Copy-on-write images (pulserec/frozen.py): a background snapshot reads arrays as they were
when registered, whatever writers changed meanwhile, copying only the chunks they touched."""

from __future__ import annotations

import numpy as np
import pytest

from pulserec import frozen as frozen_module
from pulserec.frozen import FrozenArrays
from pulserec.profiles.keyed import KeyedTable
from pulserec.profiles.table import ProfileTable


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(frozen_module, "CHUNK_BYTES", 64)  # 8 float64 rows a chunk: many chunks


def test_the_image_is_the_registered_state_whatever_is_written_between_reads(small_chunks):
    rng = np.random.default_rng(3)
    flat, grid = rng.random(1000), rng.integers(0, 9, size=(300, 7)).astype(np.int32)
    before = flat.copy(), grid.copy()
    frozen = FrozenArrays()
    frozen.track(flat), frozen.track(grid)
    reads = frozen.chunks(flat)
    got = [next(reads), next(reads)]  # the snapshot is two chunks into `flat`
    writes = [5, slice(0, 40), slice(990, None), np.array([17, 17, 400, 999]), slice(10, 10)]
    for rows in writes:
        frozen.before_write(flat, rows)
        flat[rows] += 1.0
        frozen.before_write(grid, rows if not isinstance(rows, np.ndarray) else rows % 300)
        grid[rows if not isinstance(rows, np.ndarray) else rows % 300] -= 1
    got += list(reads)
    np.testing.assert_array_equal(np.concatenate(got), before[0])
    np.testing.assert_array_equal(frozen.image(grid), before[1])
    assert not np.array_equal(flat, before[0]) and not np.array_equal(grid, before[1])
    frozen.before_write(flat, slice(None))  # read and forgotten: nothing more is saved
    assert frozen.saved_bytes == 0


def test_only_rows_written_before_they_are_read_are_copied(small_chunks):
    column = np.zeros(800)  # read 8 rows (64 bytes) at a time
    frozen = FrozenArrays()
    frozen.track(column)
    frozen.before_write(column, np.array([0, 3, 700, 3]))
    frozen.before_write(column, 3)  # saved once: its first image
    assert frozen.saved_bytes == 3 * 8
    untracked = np.zeros(10)
    frozen.before_write(untracked, 3)  # a grown (replaced) column is not the registered one
    assert frozen.saved_bytes == 3 * 8
    assert len(frozen.image(column, rows=20)) == 20  # the first rows only, then forgotten
    frozen.before_write(column, 799)
    assert frozen.saved_bytes == 0
    with pytest.raises(ValueError, match="C-contiguous"):
        frozen.track(np.zeros((4, 4))[:, 1])


def test_profile_and_keyed_tables_save_before_they_change_in_place(small_chunks):
    table = ProfileTable(86_400.0, name_of=str)
    owners = np.arange(50)
    table.fold(owners, np.array(["view"] * 50, dtype=object), np.ones(50), np.arange(50.0), np.full(50, -1),
               [], None, None)
    keyed = KeyedTable(3600.0)
    keyed.add(np.arange(40, dtype=np.int64), np.ones(40), np.zeros(40))
    keyed.merge()
    total, main_values = table.dense["total"].copy(), keyed.main[1].copy()
    frozen = FrozenArrays()
    table.freeze(frozen)
    keyed.frozen = frozen
    main, _, _ = keyed.levels()
    table.update(7, "buy", 3.0, 60.0, None, (), None, None)
    table.forget(8)
    keyed.add(np.array([5], dtype=np.int64), np.ones(1), np.ones(1))
    keyed.erase(0)
    assert frozen.saved_bytes > 0
    np.testing.assert_array_equal(frozen.image(total), np.r_[np.ones(50), np.zeros(len(total) - 50)])
    np.testing.assert_array_equal(frozen.image(main[1]), main_values)
    table.thaw()
    assert table.frozen is None and all(k.frozen is None for k in table.keyed.values())


def test_strings_packed_in_steps_are_packs_pieces(monkeypatch):
    from pulserec.online import strings

    monkeypatch.setattr(strings, "STEP", 7)
    monkeypatch.setattr(strings, "PAUSE_EVERY_S", 0.0)
    words = [f"id-{k}" * (k % 3) + "\udcff" * (k % 2) for k in range(50)]  # empty ids and surrogates too
    pauses = []
    pieces = strings.pack_in_steps(iter(words), len(words), lambda: pauses.append(1))
    data, offsets = strings.pack(words)
    np.testing.assert_array_equal(np.concatenate(pieces.data), data)
    np.testing.assert_array_equal(np.concatenate(pieces.offsets), offsets)
    assert pieces.n_bytes == len(data) and len(pauses) == 8  # one per step of 7
    assert strings.unpack(np.concatenate(pieces.data), np.concatenate(pieces.offsets)) == words


def test_records_upserted_after_the_capture_are_written_as_they_were(tmp_path):
    """The capture takes the catalogue's records by reference (no copy of the list under the
    lock): a record an upsert replaces while the snapshot is written is kept as it was, an
    item added after the capture is left out, and closing the image stops the keeping."""
    from pulserec.config import Settings
    from pulserec.online.state import OnlineState
    from pulserec.online.state_arrays import _joined, capture
    from pulserec.online.strings import unpack
    from pulserec.records import ItemRecord

    state = OnlineState(Settings(data_dir=tmp_path))
    state.catalog.upsert_many([ItemRecord(item_id=f"i{k}", title=f"old {k}", category="a") for k in range(3)])
    image = capture(state)
    state.catalog.upsert(ItemRecord(item_id="i1", title="new 1", category="b"))
    state.catalog.upsert(ItemRecord(item_id="i1", title="newer 1", category="c"))
    state.catalog.upsert(ItemRecord(item_id="i9", title="after", category="a"))
    arrays = {m.name: _joined(m) for m in image.members()}
    image.release()
    titles = [text.split('"')[1] for text in unpack(arrays["items.records.data"], arrays["items.records.offsets"])]
    assert titles == ["old 0", "old 1", "old 2"]
    assert state.catalog.get("i1").title == "newer 1" and not state.catalog._record_images
