""""Update now" from the admin: the blocklist update in a background thread, its progress kept
where a small JSON endpoint can read it (the page polls it, static/blocklists.js).

One update at a time per admin process; a second "update now" while one runs is refused. The
update is :func:`blocklists.update.update`, the same as ``kalkan blocklists update``: anything
that fails keeps the previous index and the last good copy of that list.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from blocklists.errors import BlocklistError
from blocklists.progress import Progress
from blocklists.update import update


@dataclass
class UpdateJob:
    """What one update is doing now, and how it ended. Read by the page, written by the thread
    (single assignments: the JSON endpoint may read a moment old state, never a torn one)."""

    started: float = field(default_factory=time.time)
    phase: str = ""
    count: int = 0
    finished: float | None = None
    ok: bool | None = None
    message: str = ""  # why the whole update failed (the error names what to do)
    domains: int | None = None  # in the new index
    failed: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"running": self.finished is None, "phase": self.phase, "count": self.count,
                "seconds": round((self.finished or time.time()) - self.started, 1),
                "ok": self.ok, "message": self.message, "domains": self.domains,
                "failed": self.failed}


class JobProgress(Progress):
    """A :class:`Progress` that writes into the job instead of a terminal."""

    def __init__(self, job: UpdateJob) -> None:
        self.job = job
        self.phase = ""

    def start(self, phase: str) -> None:
        self.phase = self.job.phase = phase
        self.job.count = 0

    def __call__(self, count: int) -> None:
        self.job.count = count

    def finish(self) -> None:
        self.phase = ""


class UpdateRunner:
    """Holds the current (or last) job of one admin app."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.job: UpdateJob | None = None
        self._thread: threading.Thread | None = None

    def start(self, sessions: sessionmaker[Session], data_dir: Path, *,
              timeout: float = 120.0) -> UpdateJob | None:
        """Start an update; None when one is already running."""
        with self._lock:
            if self.job is not None and self.job.finished is None:
                return None
            job = self.job = UpdateJob(phase="starting")
            self._thread = threading.Thread(target=self._run, args=(job, sessions, data_dir,
                                                                    timeout),
                                            name="kalkan-blocklist-update", daemon=True)
            self._thread.start()
            return job

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @staticmethod
    def _run(job: UpdateJob, sessions: sessionmaker[Session], data_dir: Path,
             timeout: float) -> None:
        try:
            with sessions() as db:
                result = update(db, data_dir, progress=JobProgress(job), timeout=timeout)
            job.failed = [{"name": o.name, "error": o.error or ""} for o in result.failed]
            job.ok = not result.failed
            job.domains = result.stats.domains if result.stats is not None else None
        except BlocklistError as exc:
            job.ok, job.message = False, str(exc)
        except Exception as exc:  # the page must learn that it ended, whatever happened
            job.ok, job.message = False, f"the update stopped: {exc}"
        finally:
            job.phase = ""
            job.finished = time.time()
