"""Writes snapshots of the online state in the background while the API serves."""

from __future__ import annotations

from pulserec.engine import Engine
from pulserec.recommend.background import PeriodicTask

#: Seconds between two looks at the triggers (cheap: two comparisons under no lock).
CHECK_EVERY_S = 1.0


class SnapshotTask(PeriodicTask):
    """Every second: if the settings' triggers are met, start a background snapshot (writers
    pause only for the capture of the state's levels; see `online/snapshots.py`)."""

    thread_name = "pulserec-snapshots"

    def __init__(self, engine: Engine) -> None:
        super().__init__(CHECK_EVERY_S)
        self.engine = engine

    def tick(self) -> None:
        if self.engine.checkpoints.due():
            self.engine.checkpoints.write(background=True)
