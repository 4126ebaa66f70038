"""Nightly blocklist updates: when the next one runs, and the thread that runs it."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def next_update(now: dt.datetime, at: str, jitter_minutes: int,
                rng: random.Random | None = None) -> dt.datetime:
    """The next ``at`` (local ``HH:MM``) after ``now``, plus up to ``jitter_minutes`` at random,
    so that the schools of a district do not all ask the list servers at the same minute."""
    rng = rng or random.Random()
    hour, minute = (int(x) for x in at.split(":"))
    run = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if run <= now:
        run += dt.timedelta(days=1)
    return run + dt.timedelta(seconds=rng.uniform(0, jitter_minutes * 60))


class NightlyUpdater:
    """Runs ``job`` every night in a daemon thread; a failing job is logged and retried the
    next night (the previous index stays in service meanwhile)."""

    def __init__(self, job: Callable[[], object], at: str, jitter_minutes: int,
                 timezone: dt.tzinfo) -> None:
        self.job, self.at, self.jitter, self.timezone = job, at, jitter_minutes, timezone
        self._stop = threading.Event()
        self.next_run: dt.datetime | None = None
        self.thread = threading.Thread(target=self._loop, name="kalkan-blocklists", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = dt.datetime.now(self.timezone)
            self.next_run = next_update(now, self.at, self.jitter)
            log.info("next blocklist update at %s", self.next_run.isoformat(timespec="minutes"))
            if self._stop.wait((self.next_run - now).total_seconds()):
                return
            try:
                self.job()
            except Exception:  # logged; tomorrow is another try
                log.exception("the nightly blocklist update failed")
