"""The background tasks beside a served engine: a watcher that installs models saved by other
processes (`model_watch_interval`) and the snapshot writer (`snapshot_every_*`)."""

from __future__ import annotations

from pulserec.engine import Engine
from pulserec.recommend.background import PeriodicTask
from pulserec.recommend.saved_models import ModelWatcher
from pulserec.runtime.snapshot_task import SnapshotTask


class Background:
    """Started for an engine while a server serves it (the default app for the app's lifetime,
    another app while it is open); `stop()` stops them all."""

    def __init__(self, engine: Engine) -> None:
        interval = engine.settings.model_watch_interval
        self.tasks: list[PeriodicTask] = []
        if interval > 0:
            self.tasks.append(ModelWatcher(engine.training.install_saved, interval).start())
        if engine.snapshots is not None:
            self.tasks.append(SnapshotTask(engine).start())

    def stop(self) -> None:
        for task in self.tasks:
            task.stop()
