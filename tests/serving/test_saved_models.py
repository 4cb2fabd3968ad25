"""Models saved under <data_dir>/models/ by another process are picked up while serving."""

from __future__ import annotations

import pickle
import time

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.recommend.saved_models import ModelWatcher, models_dir
from pulserec.runtime.process import ServerProcess


def other_process(engine: Engine) -> Engine:
    """A second engine over the same data dir, standing for a trainer elsewhere."""
    return Engine(Settings.load(engine.settings.data_dir))


def test_a_model_saved_elsewhere_is_installed_once_per_change(engine, fill):
    fill(engine)
    trainer = other_process(engine)
    try:
        assert "als" not in engine.service.strategies
        trainer.training.train(["als"])
        assert engine.training.install_saved() == [f"als: loaded from {models_dir(engine.settings.data_dir) / 'als.model'}"]
        assert engine.recommend("u0003", 5, strategy="als").strategy == "als"
        assert engine.service.strategies["als"].meta["version"] == 1
        assert engine.training.install_saved() == []  # unchanged file: nothing to do
        trainer.training.train(["als"])  # retrained: a new file
        assert len(engine.training.install_saved()) == 1
        assert engine.service.strategies["als"].meta["version"] == 2
    finally:
        trainer.close()


def test_a_model_this_process_saved_is_not_installed_again(engine, fill):
    fill(engine)
    engine.training.train(["als"])
    assert engine.training.install_saved() == []
    assert engine.service.strategies["als"].meta["version"] == 1


def test_unusable_files_are_skipped(engine, fill, caplog):
    fill(engine)
    folder = models_dir(engine.settings.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.model").write_bytes(b"not a model")
    failed: dict[str, str] = {}
    assert engine.training.install_saved(failed) == []
    assert list(failed) == [str(folder / "broken.model")]  # remembered: not retried until it changes
    assert engine.recommend("u0003", 5).items  # still serving
    assert [r.getMessage() for r in caplog.records if "refused" in r.getMessage()] == [
        f"model file {folder / 'broken.model'} refused: not a pulserec model file (not a zip archive)"]


class PickleBomb:
    def __reduce__(self):
        return (open, (BOMB_MARK, "w"))  # would create a file if unpickled


BOMB_MARK = ""


def test_a_pickle_bomb_in_the_models_folder_is_never_run(engine, fill, tmp_path, caplog):
    """Whoever can write <data_dir>/models/ must not get code execution in the servers."""
    global BOMB_MARK
    fill(engine)
    BOMB_MARK = str(tmp_path / "exploded")
    folder = models_dir(engine.settings.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "als.pkl").write_bytes(pickle.dumps(PickleBomb()))  # the old format's name
    (folder / "als.model").write_bytes(pickle.dumps(PickleBomb()))  # and ours
    failed: dict[str, str] = {}
    assert engine.training.install_saved(failed) == []
    assert not (tmp_path / "exploded").exists()
    assert "als" not in engine.service.strategies
    messages = [r.getMessage() for r in caplog.records]
    assert any("als.pkl ignored: pickled models are not loaded" in m for m in messages)
    assert any("als.model refused: not a pulserec model file" in m for m in messages)


def test_a_flipped_byte_is_refused_and_the_served_model_stays(engine, fill, caplog):
    fill(engine)
    engine.training.train(["als"])
    path = models_dir(engine.settings.data_dir) / "als.model"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    failed: dict[str, str] = {}
    assert engine.training.install_saved(failed) == []
    assert list(failed) == [str(path)]
    assert engine.service.strategies["als"].meta["version"] == 1  # the trained one goes on serving
    assert any("als.model refused" in r.getMessage() and "checksum" in r.getMessage() for r in caplog.records)


def test_the_watcher_thread_installs_within_its_interval(engine, fill):
    fill(engine)
    watcher = ModelWatcher(engine.training.install_saved, interval=0.05).start()
    trainer = other_process(engine)
    try:
        trainer.training.train(["als"])
        deadline = time.monotonic() + 10
        while "als" not in engine.service.strategies and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "als" in engine.service.strategies and watcher.installs == 1
    finally:
        watcher.stop()
        trainer.close()


def test_a_model_trained_through_one_worker_is_served_by_every_worker(tmp_path, fill):
    data_dir = tmp_path / "data"
    seeding = Engine(Settings.load(data_dir))
    fill(seeding)
    seeding.close()
    with ServerProcess(data_dir, workers=2, env={"PULSEREC_MODEL_WATCH_INTERVAL": "0.2"}) as server:
        clients = server.connection_per_worker()
        try:
            assert all(c.get("/users/u0003/recommendations", params={"strategy": "als"}).status_code == 422 for c in clients)
            assert clients[0].post("/models/als/train").status_code == 202
            deadline = time.monotonic() + 60
            served: list[int] = []
            while time.monotonic() < deadline:
                served = [c.get("/users/u0003/recommendations", params={"strategy": "als"}).status_code for c in clients]
                if served == [200, 200]:
                    break
                time.sleep(0.1)
            assert served == [200, 200], server.log_tail()
            versions = [m["version"] for c in clients for m in c.get("/models").json()["models"] if m["name"] == "als"]
            assert versions == [1, 1]
        finally:
            for client in clients:
                client.close()


def test_model_watch_interval_is_validated(tmp_path):
    with pytest.raises(ValueError, match="model_watch_interval"):
        Settings.load(tmp_path, model_watch_interval=-1)
    with pytest.raises(ValueError, match="positive"):
        ModelWatcher(None, 0)  # type: ignore[arg-type]


def test_concurrent_saves_of_one_model_do_not_collide(tmp_path, fill, engine):
    """Two trainings of one model finishing together each rename their own temporary file."""
    from concurrent.futures import ThreadPoolExecutor

    from pulserec.models.ease import EASE
    from pulserec.recommend.training import snapshot

    target = tmp_path / "models" / "ease.model"
    fill(engine)
    model = EASE().fit(snapshot(engine.store, engine.settings.event_weights)[0])
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: model.save(target), range(20)))
    assert isinstance(EASE.load(target), EASE)
    assert [p.name for p in target.parent.iterdir()] == ["ease.model"]  # no temporary file left
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_retrain_keeps_the_parameters_the_model_was_trained_with(engine, fill):
    """The background retrain (serve --retrain, POST /models/{name}/train) uses the saved params."""
    from pulserec.models.persist import read_meta

    fill(engine)
    engine.training.train(["als"], params={"als": {"factors": 8, "iterations": 3}})
    engine.training.train(["als"])  # in this process: the served model's params
    served = engine.service.strategies["als"]
    assert served.model.factors == 8 and served.meta["params"]["iterations"] == 3
    restarted = other_process(engine)  # a new process: the saved file's params
    try:
        assert restarted.service.strategies["als"].model.factors == 8
        restarted.training.train(["als"])
        assert restarted.service.strategies["als"].model.item_factors.shape[1] == 8
        meta = read_meta(models_dir(engine.settings.data_dir) / "als.model")
        assert meta["params"]["factors"] == 8 and meta["info"]["watermark_seq"] == engine.store.max_seq()
        assert meta["info"]["trained_at"] > 0 and meta["version"] == 1
    finally:
        restarted.close()
