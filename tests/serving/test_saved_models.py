"""Models saved under <data_dir>/models/ by another process are picked up while serving."""

from __future__ import annotations

import time

import pytest

from pulserec.config import Settings
from pulserec.engine import Engine
from pulserec.recommend.saved_models import ModelWatcher, models_dir
from pulserec.serving.process import ServerProcess


def other_process(engine: Engine) -> Engine:
    """A second engine over the same data dir, standing for a trainer elsewhere."""
    return Engine(Settings.load(engine.settings.data_dir))


def test_a_model_saved_elsewhere_is_installed_once_per_change(engine, fill):
    fill(engine)
    trainer = other_process(engine)
    try:
        assert "als" not in engine.service.strategies
        trainer.train(["als"])
        assert engine.install_saved() == [f"als: loaded from {models_dir(engine.settings.data_dir) / 'als.pkl'}"]
        assert engine.recommend("u0003", 5, strategy="als").strategy == "als"
        assert engine.service.strategies["als"].meta["version"] == 1
        assert engine.install_saved() == []  # unchanged file: nothing to do
        trainer.train(["als"])  # retrained: a new file
        assert len(engine.install_saved()) == 1
        assert engine.service.strategies["als"].meta["version"] == 2
    finally:
        trainer.close()


def test_a_model_this_process_saved_is_not_installed_again(engine, fill):
    fill(engine)
    engine.train(["als"])
    assert engine.install_saved() == []
    assert engine.service.strategies["als"].meta["version"] == 1


def test_unusable_files_are_skipped(engine, fill):
    fill(engine)
    folder = models_dir(engine.settings.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.pkl").write_bytes(b"not a pickle")
    failed: dict[str, str] = {}
    assert engine.install_saved(failed) == []
    assert list(failed) == [str(folder / "broken.pkl")]  # remembered: not retried until it changes
    assert engine.recommend("u0003", 5).items  # still serving


def test_the_watcher_thread_installs_within_its_interval(engine, fill):
    fill(engine)
    watcher = ModelWatcher(engine.install_saved, interval=0.05).start()
    trainer = other_process(engine)
    try:
        trainer.train(["als"])
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


def test_concurrent_saves_of_one_model_do_not_collide(tmp_path):
    """Two trainings of one model finishing together each rename their own temporary file."""
    from concurrent.futures import ThreadPoolExecutor

    from pulserec.models.item_knn import ItemKNN

    target = tmp_path / "models" / "item_knn.pkl"
    model = ItemKNN()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: model.save(target), range(40)))
    assert isinstance(ItemKNN.load(target), ItemKNN)
    assert [p.name for p in target.parent.iterdir()] == ["item_knn.pkl"]  # no temporary file left
    assert target.stat().st_mode & 0o777 == 0o644
