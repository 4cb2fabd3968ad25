"""A daemon thread that does one unit of work every `period` seconds until stopped."""

from __future__ import annotations

import logging
import threading
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T", bound="PeriodicTask")


class PeriodicTask:
    """Subclasses implement `tick()`; an exception in it is logged (as `last_error` too) and the
    loop goes on, so serving never stops because a background job failed once."""

    thread_name = "pulserec-background"

    def __init__(self, period: float) -> None:
        if period <= 0:
            raise ValueError("the period must be positive")
        self.period = period
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def start(self: T) -> T:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - keep serving with what there is
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("%s failed", self.thread_name)
