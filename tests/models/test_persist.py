"""The saved-model format: nothing in a model file can run code, and damaged files are refused."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from planted_groups import group_items

from pulserec.models.base import Query
from pulserec.models.ease import EASE
from pulserec.models import registry
from pulserec.models.persist import (
    META_ENTRY,
    PAYLOAD_ENTRY,
    Loadable,
    ModelFileError,
    load_model,
    read_meta,
    save_model,
    saveable_class,
)
from pulserec.models.registry import MODELS, SAVED_ONLY, saved_class

EXPLODED: list[str] = []


def explode() -> None:  # what a pickle bomb would run
    EXPLODED.append("boom")


class Bomb:
    def __reduce__(self):
        return (explode, ())


@pytest.fixture
def saved(groups, tmp_path):
    path = tmp_path / "ease.model"
    model = EASE(regularization=2.0).fit(groups)
    meta = save_model(model, path, {"watermark_seq": 7})
    return model, path, meta


def rewrite(path, meta=None, payload=None, compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path) as archive:
        old_meta, old_payload = archive.read(META_ENTRY), archive.read(PAYLOAD_ENTRY)
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr(META_ENTRY, json.dumps(meta).encode() if meta is not None else old_meta)
        archive.writestr(PAYLOAD_ENTRY, payload if payload is not None else old_payload)


def test_round_trip_keeps_scores_params_and_info(saved, groups) -> None:
    model, path, meta = saved
    loaded, read = load_model(path)
    query = Query(items=group_items(groups, "a")[:2], weights=np.ones(2))
    np.testing.assert_array_equal(loaded.score(query, groups.n_items), model.score(query, groups.n_items))
    assert read["params"]["regularization"] == 2.0 and read["info"] == {"watermark_seq": 7}
    assert read_meta(path) == read == meta
    assert loaded.user_ids.ids == groups.user_ids.ids


def test_every_saved_model_class_declares_the_ability() -> None:
    online: set[str] = set()
    for name in set(MODELS) | set(SAVED_ONLY):
        if name in online or name in ("sasrec", "gru4rec", "content_embed") and not _importable(name):
            continue
        cls = saved_class(name)
        assert all(callable(getattr(cls, m, None)) for m in ("saved_params", "saved_values", "from_saved")), name
        assert issubclass(cls, Loadable), name


def test_a_registered_class_that_cannot_load_is_refused_by_name(monkeypatch) -> None:
    """The check is the declared protocol: a class the registry names without `from_saved`
    (a blend is built, never loaded) is a ModelFileError naming the model, not an AttributeError."""
    monkeypatch.setitem(registry.SAVED_ONLY, "blended", "pulserec.models.blend:Blend")
    with pytest.raises(ModelFileError, match="model 'blended' cannot be loaded from a file"):
        saveable_class("blended")
    assert saveable_class("ease").__name__ == "EASE"


def _importable(name: str) -> bool:
    try:
        saved_class(name)
    except ImportError:
        return False
    return True


def test_a_pickle_bomb_is_not_executed(tmp_path) -> None:
    path = tmp_path / "als.model"
    path.write_bytes(pickle.dumps(Bomb()))
    with pytest.raises(ModelFileError, match="not a zip"):
        load_model(path)
    assert EXPLODED == []


def test_a_pickled_object_array_inside_the_payload_is_refused(saved) -> None:
    _, path, meta = saved
    buffer = io.BytesIO()
    np.savez(buffer, **{"model.weights": np.array([Bomb()], dtype=object)})
    payload = buffer.getvalue()
    import hashlib

    rewrite(path, {**meta, "payload_sha256": hashlib.sha256(payload).hexdigest()}, payload)
    with pytest.raises(ModelFileError, match="refused"):
        load_model(path)
    assert EXPLODED == []


def test_a_flipped_byte_is_refused(saved) -> None:
    _, path, _ = saved
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(PAYLOAD_ENTRY)
    middle = info.header_offset + 30 + len(info.filename) + info.file_size // 2
    data[middle] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(path)


def test_a_changed_payload_with_a_valid_zip_is_refused_by_the_sha256(saved) -> None:
    _, path, _ = saved
    with zipfile.ZipFile(path) as archive:
        payload = bytearray(archive.read(PAYLOAD_ENTRY))
    payload[len(payload) // 2] ^= 0x01
    rewrite(path, payload=bytes(payload))  # the zip's own CRC is recomputed: only the sha256 can tell
    with pytest.raises(ModelFileError, match="payload checksum mismatch"):
        load_model(path)


@pytest.mark.parametrize(("change", "message"), [
    ({"version": 2}, "version 2"),
    ({"format": "other"}, "not a pulserec-model"),
    ({"model": "os.system"}, "unknown saved model"),
    ({"model": "item_knn"}, "unexpected keyword argument 'regularization'"),
])
def test_foreign_versions_and_names_are_refused(saved, change, message) -> None:
    _, path, meta = saved
    rewrite(path, {**meta, **change})
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_fields_outside_the_declared_ones_are_not_set(saved) -> None:
    _, path, meta = saved
    rewrite(path, {**meta, "fields": {**meta["fields"], "score": {"kind": "json", "value": 1}}})
    model, _ = load_model(path)
    assert callable(model.score)


def test_compressed_entries_are_refused(saved) -> None:
    _, path, _ = saved
    rewrite(path, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelFileError, match="compressed"):
        load_model(path)


def test_wrong_expected_model_is_refused(saved) -> None:
    _, path, _ = saved
    with pytest.raises(ModelFileError, match="not 'als'"):
        load_model(path, expected="als")


def test_unsaveable_models_say_so(tmp_path) -> None:
    from pulserec.models.blend import Blend

    with pytest.raises(TypeError, match="cannot be saved"):
        save_model(Blend([]), tmp_path / "x.model")
