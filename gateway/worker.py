"""``kalkan worker``: the installation-wide background work, alone in its process.

Under systemd (deploy/systemd/kalkan-worker.service) this is the one process that runs the
alert detector, the notifier, the retention purge, the nightly blocklist update and the
nightly backup; ``kalkan admin --web-only`` then serves only the pages. ``kalkan run`` still
does all of it in one process for a quick start.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from gateway import sd_notify
from gateway.config import Config


def start_background(config: Config, sessions: sessionmaker[Session],
                     config_file: Path | None) -> list[object]:
    """Start every background job once; returns what was started (for stopping)."""
    from blocklists.progress import Progress
    from gateway.backup_schedule import NightlyBackup
    from gateway.bootstrap import ensure_blocklists, ensure_policy, open_engine_for
    from gateway.runner import start_event_pipeline, start_nightly_updates

    with sessions() as db:
        ensure_policy(db, config)
        ensure_blocklists(db, config, progress=Progress())
    engine = open_engine_for(config, sessions)  # only for the school's time zone
    timezone = engine.snapshot.timezone
    engine.stop()
    started: list[object] = [start_event_pipeline(config, sessions)]
    if config.blocklists.auto_update:
        started.append(start_nightly_updates(config, sessions, timezone))
    if config.backup.nightly:
        started.append(NightlyBackup(config, config_file, timezone).start())
    return started


def run_worker(config: Config, sessions: sessionmaker[Session],
               config_file: Path | None) -> None:
    """Run the background jobs until SIGTERM or SIGINT."""
    logging.basicConfig(level=config.logging.level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    started = start_background(config, sessions, config_file)
    sd_notify.ready("alerts, notifications, retention, nightly updates and backups running")
    sd_notify.start_watchdog_thread()
    logging.getLogger(__name__).info("kalkan worker: background jobs running")
    done.wait()
    sd_notify.stopping()
    for job in started:
        stop = getattr(job, "stop", None)
        if stop is not None:
            stop()
