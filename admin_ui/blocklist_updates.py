""""Update now" from the admin: the blocklist update in a background thread, its progress kept
where a small JSON endpoint can read it (the page polls it, static/blocklists.js).

One update at a time for the whole installation: the running update holds a lock file in the
data directory, so a second "update now" is refused even when it reaches another of the
admin's processes, and the job's progress is also written to a small file there, which every
process reads. The update is :func:`blocklists.update.update`, the same as ``kalkan
blocklists update``: anything that fails keeps the previous index and the last good copy of
that list.
"""

from __future__ import annotations

import fcntl
import json
import os
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


LOCK_FILE = "blocklists/update.lock"
PROGRESS_FILE = "blocklists/update-progress.json"


def publish(job: UpdateJob, data_dir: Path) -> None:
    """The job's state where every admin process can read it (written whole, then renamed)."""
    path = data_dir / PROGRESS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(job.as_json()))
        temporary.replace(path)
    except OSError:
        pass  # a full disk: this process's page still shows the job


class JobProgress(Progress):
    """A :class:`Progress` that writes into the job instead of a terminal."""

    def __init__(self, job: UpdateJob, data_dir: Path | None = None) -> None:
        self.job = job
        self.phase = ""
        self.data_dir = data_dir
        self._published = 0.0

    def start(self, phase: str) -> None:
        self.phase = self.job.phase = phase
        self.job.count = 0
        self._publish(force=True)

    def __call__(self, count: int) -> None:
        self.job.count = count
        self._publish()

    def _publish(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.data_dir is not None and (force or now - self._published > 0.5):
            self._published = now
            publish(self.job, self.data_dir)

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
        """Start an update; None when one is already running (here or in another process)."""
        with self._lock:
            if self.job is not None and self.job.finished is None:
                return None
            lock = _take_lock(data_dir)
            if lock is None:
                return None
            job = self.job = UpdateJob(phase="starting")
            publish(job, data_dir)
            self._thread = threading.Thread(target=self._run, args=(job, sessions, data_dir,
                                                                    timeout, lock),
                                            name="kalkan-blocklist-update", daemon=True)
            self._thread.start()
            return job

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def current(self, data_dir: Path | None) -> dict[str, Any] | None:
        """The job this process runs, else the one another process published, else None."""
        if self.job is not None or data_dir is None:
            return self.job.as_json() if self.job is not None else None
        try:
            found = json.loads((data_dir / PROGRESS_FILE).read_text())
        except (OSError, ValueError):
            return None
        if found.get("running"):
            lock = _take_lock(data_dir)
            if lock is not None:  # nobody holds the lock: that process died mid-update
                os.close(lock)
                found.update(running=False, ok=False, message="the update was interrupted")
        return found

    @staticmethod
    def _run(job: UpdateJob, sessions: sessionmaker[Session], data_dir: Path,
             timeout: float, lock: int) -> None:
        try:
            with sessions() as db:
                result = update(db, data_dir, progress=JobProgress(job, data_dir),
                                timeout=timeout)
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
            publish(job, data_dir)
            os.close(lock)  # releases the lock


def _take_lock(data_dir: Path) -> int | None:
    """A file descriptor holding the update lock, or None if another update holds it."""
    path = data_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
