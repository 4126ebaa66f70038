"""At start: is the SQLite database sound? If not, put it aside and restore the last backup.

Every process opens the database through :func:`gateway.bootstrap.open_database`, which calls
:func:`ensure_sound_database` first. A damaged file could hold a damaged policy; a gateway
that compiled it might allow what the council blocked. So a damaged file is never used: it
is renamed ``kalkan.db.corrupt-<time>`` (kept for the curious), the newest backup whose
database passes the same check replaces it, and ``status/database-restore.json`` says what
happened (``kalkan status`` and the journal show it). With no good backup the process
refuses to start: no DNS answers at all is safer than answers from a broken policy.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.backup import (
    SQLITE_MEMBER,
    BackupError,
    list_backups,
    read_archive,
    sqlite_path,
    sqlite_problem,
)
from gateway.config import Config
from policies.errors import KalkanError

log = logging.getLogger(__name__)

NOTE_FILE = "database-restore.json"


@dataclass(frozen=True)
class Restored:
    """What the start-up check did, as written to ``status/database-restore.json``."""

    at: str
    problem: str
    corrupt_file: str
    backup: str


def ensure_sound_database(config: Config) -> Restored | None:
    """Check the SQLite file (``PRAGMA quick_check``: reads every page, skips the slow index
    cross-checks) and replace it from a backup if it is damaged; None if nothing was done."""
    path = sqlite_path(config)
    if path is None or not path.exists() or path.stat().st_size == 0:
        return None  # PostgreSQL looks after itself; a missing file is a new installation
    # DNS, proxy, admin and worker start together: one checks and restores, the others wait
    # for it and then find a sound file.
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read-only is enough for flock: a lock file that root created does not lock kalkan out.
    lock = os.open(path.parent / ".database-check.lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        problem = sqlite_problem(path)
        if problem is None:
            return None
        return _restore_newest(config, path, problem)
    finally:
        os.close(lock)


def _restore_newest(config: Config, path: Path, problem: str) -> Restored:
    now = dt.datetime.now(dt.UTC)
    log.error("the database %s is damaged (%s); looking for a backup in %s", path, problem,
              config.backup_dir)
    for candidate in list_backups(config.backup_dir):
        try:
            archive = read_archive(candidate)
        except BackupError as exc:
            log.warning("backup %s is unusable: %s", candidate, exc)
            continue
        data = archive.members.get(SQLITE_MEMBER)
        if data is None:
            continue
        tmp = path.with_name(f".{path.name}.restoring")
        tmp.write_bytes(data)
        if sqlite_problem(tmp) is not None:
            log.warning("backup %s holds a damaged database too", candidate)
            tmp.unlink(missing_ok=True)
            continue
        _copy_owner(path, tmp)
        kept = path.with_name(f"{path.name}.corrupt-{now:%Y%m%dT%H%M%SZ}")
        os.replace(path, kept)
        for suffix in ("-wal", "-shm"):  # they belong to the damaged file
            side = Path(f"{path}{suffix}")
            if side.exists():
                os.replace(side, Path(f"{kept}{suffix}"))
        os.replace(tmp, path)
        note = Restored(at=now.isoformat(timespec="seconds"), problem=problem,
                        corrupt_file=str(kept), backup=str(candidate))
        _write_note(config, note)
        log.error("restored the database from backup %s (made %s); the damaged file is "
                  "kept as %s", candidate, archive.manifest.created, kept)
        return note
    raise KalkanError(f"the database {path} is damaged ({problem}) and there is no good "
                      f"backup in {config.backup_dir}; kalkan will not filter from a damaged "
                      "policy", hint="restore a backup with `kalkan restore FILE`, or move the "
                      "file away to start again from the default policy")


def _copy_owner(source: Path, target: Path) -> None:
    st = source.stat()
    try:
        os.chown(target, st.st_uid, st.st_gid)
        os.chmod(target, st.st_mode & 0o777)
    except PermissionError:
        pass


def _write_note(config: Config, note: Restored) -> None:
    directory = Path(config.data_dir) / "status"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / NOTE_FILE).write_text(json.dumps(asdict(note), indent=2))


def last_restore(config: Config) -> Restored | None:
    """The last automatic restore, for ``kalkan status``."""
    try:
        raw = json.loads((Path(config.data_dir) / "status" / NOTE_FILE).read_text())
        return Restored(**raw)
    except (OSError, ValueError, TypeError):
        return None


def describe_last_restore(config: Config) -> str | None:
    """The line ``kalkan status`` shows after an automatic restore."""
    note = last_restore(config)
    if note is None:
        return None
    return (f"database: restored at start from backup {note.backup} on {note.at} (the file "
            f"was damaged: {note.problem}); the damaged file is kept as {note.corrupt_file}")
