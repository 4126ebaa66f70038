"""A background thread that runs one round of work every few seconds until it is stopped."""

from __future__ import annotations

import logging
import threading
from typing import Self

log = logging.getLogger(__name__)


class PollingThread:
    """Base of the services that poll the database (the alert detector, the notifier).

    A round that raises is logged and :meth:`round_failed` is told; the next round tries
    again, so a database that is away for a while costs nothing but the wait.
    """

    thread_name = "kalkan-poll"
    interval: float = 1.0

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_round(self) -> None:
        raise NotImplementedError

    def round_failed(self) -> None:
        """Called after a round raised; override to drop state that may be stale."""

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_round()
            except Exception:
                log.exception("%s: round failed", self.thread_name)
                self.round_failed()
            self._stop.wait(self.interval)
