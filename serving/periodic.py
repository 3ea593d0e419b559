"""A step repeated every few seconds in a daemon thread (registry polling, snapshot sync)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable


class PeriodicTask:
    """Run ``step`` every ``interval`` seconds until stopped.

    A failing step is logged and tried again at the next interval: pollers must outlive a
    briefly unavailable database or registry and keep the API serving.
    """

    def __init__(
        self, name: str, interval: float, step: Callable[[], object], log: logging.Logger
    ) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._step()
            except Exception:
                self._log.exception("%s failed; retrying in %.1f s", self.name, self.interval)

    def start(self) -> None:
        """Start the thread (no-op when it runs already)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread (waits for a step in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
