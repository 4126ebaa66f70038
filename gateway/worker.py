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
from gateway.log_format import configure_logging


def start_background(config: Config, sessions: sessionmaker[Session],
                     config_file: Path | None) -> list[object]:
    """Start every background job once; returns what was started (for stopping)."""
    from blocklists.progress import Progress
    from gateway.bootstrap import ensure_blocklists, ensure_policy, open_engine_for
    from gateway.runner import start_background_jobs

    with sessions() as db:
        ensure_policy(db, config)
        ensure_blocklists(db, config, progress=Progress())
    # Watched: the devices-seen recorder reads the rooms from the current snapshot.
    engine = open_engine_for(config, sessions, watch=True)
    return [engine, *start_background_jobs(config, sessions, engine, config_file)]


def run_worker(config: Config, sessions: sessionmaker[Session],
               config_file: Path | None) -> None:
    """Run the background jobs until SIGTERM or SIGINT."""
    configure_logging(config.logging.level, config.logging.format)
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
