"""``kalkan run``: start the parts that exist, keep the policy current, say where to look."""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import click
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from blocklists.progress import Progress
from blocklists.schedule import NightlyUpdater
from blocklists.update import update as update_blocklists
from gateway import sd_notify
from gateway.alerts.service import AlertService
from gateway.bootstrap import ensure_blocklists, ensure_policy, open_engine_for
from gateway.config import Config, parse_listen
from gateway.events.retention import Purger
from gateway.health.monitor import HealthMonitor
from gateway.identity.seen import start_recorder
from gateway.log_format import configure_logging
from gateway.notify.sender import Notifier
from gateway.timetable_opener import TimetableOpener

if TYPE_CHECKING:
    from policies.engine import Engine


def start_gateway_processes(config_path: str | None, *, dns: bool = True,
                            proxy: bool = True) -> list[subprocess.Popen[bytes]]:
    """The DNS resolver and the proxy, each its own process so that both cores work
    (DESIGN.md); they share nothing with this one but the database and the index file."""
    # Not `-m gateway.cli`: as __main__ it would be a second copy of the module that the
    # command modules importing gateway.cli do not see.
    base = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]
    if config_path:
        base += ["--config", config_path]
    commands = ([["dns"]] if dns else []) + ([["proxy"]] if proxy else [])
    return [subprocess.Popen(base + command) for command in commands]


def stop_processes(children: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def ensure_policy_and_lists(config: Config, sessions: sessionmaker[Session]) -> None:
    """A policy in force and a blocklist index, made from the bundled ones when missing."""
    try:
        with sessions() as db:
            ensure_policy(db, config)
            if ensure_blocklists(db, config, progress=Progress()):
                click.echo("kalkan: built the blocklist index from the bundled lists")
    except OperationalError:
        if not config.district.url:
            raise
        # A school of a district starts with its saved policy while the district is away.
        logging.getLogger(__name__).warning(
            "district database unreachable: starting with the saved policy")


def run_all(config: Config, sessions: sessionmaker[Session], *,
            admin_listen: str | None = None, config_path: str | None = None,
            gateway: bool = True, background: bool = True, web_processes: int = 1,
            listen_fd: int | None = None) -> None:
    """The admin pages, with (``background``) the installation-wide jobs and (``gateway``)
    the DNS and proxy processes; ``kalkan admin --web-only`` under systemd runs the pages alone,
    ``kalkan worker`` the jobs. The pages are served by ``web_processes`` processes, this one
    and more serving only pages (admin_ui/serving.py); ``listen_fd``: this is one of those,
    on the socket the first one bound."""
    from admin_ui import create_app, dashboard
    from admin_ui.serving import (
        die_with_parent,
        inherited_socket,
        listen_socket,
        serve,
        start_web_processes,
    )

    helper = listen_fd is not None
    if helper:
        die_with_parent()

    configure_logging(config.logging.level, config.logging.format)
    if not helper:  # (a helper is started after the first process has done this)
        ensure_policy_and_lists(config, sessions)
    engine = open_engine_for(config, sessions, watch=True)
    if background:
        start_background_jobs(config, sessions, engine, config_path)
    host, port = parse_listen(admin_listen or config.admin.listen)
    app = create_app({"SESSIONS": sessions, "ENGINE": engine,
                      "DEFAULT_GROUP": config.policy.default_group, "KALKAN_CONFIG": config,
                      "DATA_DIR": config.data_dir, "NOTIFICATIONS": config.notifications,
                      "BLOCKLIST_TIMEOUT": config.blocklists.download_timeout,
                      "DISTRICT_URL": config.district.url,
                      "SECRET_KEY_FILE": config.admin.secret_key_file
                      or config.data_dir / "secret_key"})
    dashboard.warm_up(app)
    if helper:
        sock = inherited_socket(listen_fd)  # type: ignore[arg-type]
        click.echo(f"kalkan: admin process {os.getpid()} serving too")
        serve(app, sock)
        return
    sock = listen_socket(host, port)  # listening from here on
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"kalkan: policy revision {engine.snapshot.revision} in force "
               f"(version {engine.snapshot.version})")
    click.echo(f"kalkan: admin at http://{shown}:{port}/ in {web_processes} "
               f"process{'es' if web_processes > 1 else ''}  (Ctrl-C to stop)")
    children = start_web_processes(config_path, sock, web_processes - 1)
    children += start_gateway_processes(config_path) if gateway else []
    if gateway:
        click.echo(f"kalkan: DNS on {', '.join(config.dns.listen)}; proxy on "
                   f"{config.proxy.listen}"
                   + (f" and {config.proxy.transparent_listen} (transparent)"
                      if config.proxy.transparent_listen else ""))
    try:
        sd_notify.ready(f"admin on {shown}:{port}")
        sd_notify.start_watchdog_thread()
        serve(app, sock)
    finally:
        stop_processes(children)


def start_background_jobs(config: Config, sessions: sessionmaker[Session], engine: Engine,
                          config_path: str | Path | None) -> list[object]:
    """The installation-wide jobs, once per school: nightly blocklist update, the event
    pipeline (alerts, notifications, retention, the health monitor), devices seen, the
    timetable opener and the nightly backup. ``engine`` must be watched (the recorder reads
    rooms from its snapshot). Returns what was started, for stopping."""
    from gateway.backup_schedule import NightlyBackup
    from gateway.config import find_config_path

    timezone = engine.snapshot.timezone
    started: list[object] = [start_event_pipeline(config, sessions)]
    if config.blocklists.auto_update:
        started.append(start_nightly_updates(config, sessions, timezone))
    recorder = start_recorder(sessions, engine, config.identity)  # devices, for the admin
    if recorder is not None:
        started.append(recorder)
    started.append(start_timetable_opener(sessions))
    if config.backup.nightly:
        config_file = find_config_path(str(config_path) if config_path else None)
        started.append(NightlyBackup(config, config_file, timezone).start())
    return started


def start_nightly_updates(config: Config, sessions: sessionmaker[Session],
                          timezone: dt.tzinfo) -> NightlyUpdater:
    """Update the lists every night; running processes pick the new index up by themselves."""

    def job() -> None:
        with sessions() as db:
            result = update_blocklists(db, config.data_dir,
                                       timeout=config.blocklists.download_timeout,
                                       max_bytes=config.blocklists.max_download_mb << 20)
        for failed in result.failed:
            logging.getLogger(__name__).warning("blocklist %s: %s", failed.name, failed.error)

    updater = NightlyUpdater(job, config.blocklists.update_at, config.blocklists.jitter_minutes,
                             timezone)
    updater.start()
    return updater


def start_timetable_opener(sessions: sessionmaker[Session]) -> TimetableOpener:
    """Open each lesson's session at its start (once per installation, like the notifier)."""
    return TimetableOpener(sessions).start()


# --- access log, alerts, notifications (issue 8) ---------------------------------------------

class EventPipeline(NamedTuple):
    """The installation-wide half of the access log; each DNS or proxy process starts its own
    writer with :func:`gateway.events.writer.start_writer` on its own queue."""

    alerts: AlertService | None
    notifier: Notifier
    purger: Purger
    monitor: HealthMonitor | None = None

    def stop(self) -> None:
        if self.alerts is not None:
            self.alerts.stop()
        if self.monitor is not None:
            self.monitor.stop()
        self.notifier.stop()
        self.purger.stop()


def start_event_pipeline(config: Config, sessions: sessionmaker[Session]) -> EventPipeline:
    """Start the detector, the notifier and the retention purge, once per installation.

    They read what the writers committed, so they may run in any one process (here, the
    one of ``kalkan run``); a second copy would do no harm (the outbox is idempotent) but
    would do every piece of work twice.
    """
    alerts = AlertService(sessions, config).start() if config.alerts.enabled else None
    # The uplink samples, outages and the daily report (issue 10): once per installation too.
    monitor = (HealthMonitor(sessions, config).start() if config.daily_status.enabled
               else None)
    return EventPipeline(alerts, Notifier(sessions, config).start(),
                         Purger(sessions, config.retention).start(), monitor)
