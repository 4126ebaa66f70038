"""The nightly backup: a daemon thread that writes an archive at ``backup.at`` and prunes old
ones, so that the start-up check always has a recent good database to fall back on."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

from blocklists.schedule import next_update
from gateway.backup import create_backup, prune_backups
from gateway.config import Config

log = logging.getLogger(__name__)


def run_nightly_backup(config: Config, config_file: Path | None) -> Path:
    """One nightly backup: the CA key goes in only if backup.passphrase_file gives a passphrase."""
    passphrase = None
    if config.backup.passphrase_file is not None:
        passphrase = config.backup.passphrase_file.read_bytes().strip() or None
    path = create_backup(config, config_file=config_file, passphrase=passphrase)
    removed = prune_backups(config.backup_dir, config.backup.keep_days)
    log.info("nightly backup written to %s (%d older removed)", path, len(removed))
    return path


class NightlyBackup:
    def __init__(self, config: Config, config_file: Path | None, timezone: dt.tzinfo) -> None:
        self.config, self.config_file, self.timezone = config, config_file, timezone
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kalkan-backup", daemon=True)

    def start(self) -> NightlyBackup:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            now = dt.datetime.now(self.timezone)
            at = next_update(now, self.config.backup.at, 0)
            if self._stop.wait((at - now).total_seconds()):
                return
            try:
                run_nightly_backup(self.config, self.config_file)
            except Exception:  # logged; the previous backups stay
                log.exception("the nightly backup failed")
