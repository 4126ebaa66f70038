"""The health monitor: one sample every ``daily_status.sample_seconds``, outages as intervals,
and the morning and evening report when their time comes.

It runs in ``kalkan run``'s process, reads what the DNS workers write to the status directory
(upstream health, failures) and the kernel's counters of the uplink interface, and writes
``status_samples``, ``uplink_outages`` and ``daily_reports``, plus ``monitor.json`` beside the
other status files. The uplink counts as down when every upstream resolver fails, or when the
speed-check URL cannot be reached; with neither to judge by, it is "unknown", never an outage.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Config
from gateway.dns.service import write_json
from gateway.health.models import DailyReport, StatusSample, UplinkOutage
from gateway.health.report import KINDS, enqueue_report
from gateway.health.services import read_status_file
from gateway.health.today import school_zone, today_status
from gateway.health.uplink import (
    InterfaceBytes,
    SpeedCheck,
    default_route_interface,
    measure_download,
    read_interface_bytes,
)
from gateway.polling import PollingThread
from policies.database import utcnow

log = logging.getLogger(__name__)

REPORT_GRACE = dt.timedelta(hours=3)  # a gateway started later than this skips that report
KEEP_SAMPLES = dt.timedelta(days=92)  # a term's worth of minutes (about 130,000 rows); outages
# and reports are kept: they are a few rows a day and what the district asks about later


class HealthMonitor(PollingThread):
    thread_name = "kalkan-health"

    def __init__(self, sessions: sessionmaker[Session], config: Config, *,
                 download: Callable[..., SpeedCheck] = measure_download) -> None:
        super().__init__()
        self.sessions = sessions
        self.config = config
        self.settings = config.daily_status
        self.interval = self.settings.sample_seconds
        self.download = download
        self.interface = self.settings.uplink_interface or default_route_interface()
        self._bytes: InterfaceBytes | None = None
        self._errors: int | None = None
        self._last: float | None = None
        self._speed_done: set[tuple[dt.date, str]] = set()
        self._purged: dt.date | None = None
        self.last_sample: StatusSample | None = None

    def run_round(self) -> None:
        self.sample()

    # --- one sample -------------------------------------------------------------------------

    def sample(self, now: dt.datetime | None = None) -> StatusSample:
        now = now or utcnow()
        clock = time.monotonic()
        seconds = clock - self._last if self._last is not None else self.interval
        self._last = clock
        row = StatusSample(time=now, seconds=seconds)
        self._measure_dns(row)
        self._measure_bytes(row)
        try:
            self._store(row, now)
        finally:  # monitor.json even when the database cannot be written (a full disk)
            self.last_sample = row
            self._write_status(row, now)
        return row

    def _store(self, row: StatusSample, now: dt.datetime) -> None:
        with self.sessions() as db:
            zone = school_zone(db)
            local = now.replace(tzinfo=dt.UTC).astimezone(zone)
            check = self._speed_check_due(local)
            causes = []
            if row.upstreams_total and row.upstreams_up == 0:
                causes.append("no upstream resolver answers")
            if check is not None:
                row.speed_mbit = check.mbit
                if not check.reachable:
                    causes.append(f"speed-check URL unreachable: {check.error}"[:200])
            judged = bool(row.upstreams_total) or check is not None
            row.uplink_up = (not causes) if judged else None
            db.add(row)
            self._track_outage(db, now, row.uplink_up, "; ".join(causes))
            if self._purged != now.date():  # once a day, old samples go
                db.execute(delete(StatusSample).where(StatusSample.time < now - KEEP_SAMPLES))
                self._purged = now.date()
            db.commit()
            db.refresh(row)
            db.expunge(row)
            self._send_reports(db, now, local)

    def _measure_dns(self, row: StatusSample) -> None:
        dns = read_status_file(self.config.status_directory / "dns.json")
        if dns is None or dns["stale"]:
            return  # the resolver is not running: no judgement on the uplink from it
        upstreams = dns.get("upstreams", [])
        row.upstreams_total = len(upstreams)
        row.upstreams_up = sum(1 for u in upstreams if u.get("up"))
        rtts = [u["srtt_ms"] for u in upstreams if u.get("up") and u.get("srtt_ms") is not None]
        row.dns_rtt_ms = min(rtts) if rtts else None
        errors = sum(int(u.get("errors", 0)) for u in upstreams)
        row.dns_errors = max(0, errors - self._errors) if self._errors is not None else 0
        self._errors = errors

    def _measure_bytes(self, row: StatusSample) -> None:
        if self.interface is None:
            return
        now = read_interface_bytes(self.interface)
        if now is not None and self._bytes is not None:
            # A counter that went backwards was reset (interface re-created): count from zero.
            row.rx_bytes = now.rx - self._bytes.rx if now.rx >= self._bytes.rx else now.rx
            row.tx_bytes = now.tx - self._bytes.tx if now.tx >= self._bytes.tx else now.tx
        self._bytes = now

    def _speed_check_due(self, local: dt.datetime) -> SpeedCheck | None:
        url = self.settings.speed_check_url
        if not url:
            return None
        due = [at for at in self.settings.speed_check_at
               if (local.date(), at) not in self._speed_done and f"{local:%H:%M}" >= at]
        if not due:
            return None
        for at in due:
            self._speed_done.add((local.date(), at))
        return self.download(url, max_bytes=self.settings.speed_check_max_mb << 20)

    def _track_outage(self, db: Session, now: dt.datetime, up: bool | None,
                      cause: str) -> None:
        open_outage = db.scalar(select(UplinkOutage).where(UplinkOutage.ended_at.is_(None))
                                .order_by(UplinkOutage.started_at.desc()).limit(1))
        if up is False and open_outage is None:
            log.warning("uplink down: %s", cause)
            db.add(UplinkOutage(started_at=now, cause=cause or "uplink down"))
        elif up is True and open_outage is not None:
            open_outage.ended_at = now
            log.info("uplink back after %.0f s", (now - open_outage.started_at).total_seconds())

    def _send_reports(self, db: Session, now: dt.datetime, local: dt.datetime) -> None:
        times = {"morning": self.settings.morning_at, "evening": self.settings.evening_at}
        for kind in KINDS:
            hour, minute = (int(x) for x in times[kind].split(":"))
            at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
            if not at <= local < at + REPORT_GRACE:
                continue
            if db.scalar(select(DailyReport.id).where(DailyReport.day == local.date(),
                                                      DailyReport.kind == kind)):
                continue
            status = today_status(self.config, db, now)
            if enqueue_report(db, self.config, kind, status, now) is not None:
                log.info("%s report of %s queued", kind, status.day)

    def _write_status(self, row: StatusSample, now: dt.datetime) -> None:
        data: dict[str, Any] = {
            "updated": time.time(), "interval": self.interval, "interface": self.interface,
            "uplink_up": row.uplink_up, "upstreams_up": row.upstreams_up,
            "upstreams_total": row.upstreams_total, "dns_rtt_ms": row.dns_rtt_ms,
            "rx_bytes": row.rx_bytes, "tx_bytes": row.tx_bytes, "seconds": row.seconds,
            "speed_mbit": row.speed_mbit, "sampled_at": now.isoformat()}
        try:
            write_json(self.config.status_directory / "monitor.json", data)
        except OSError as exc:
            log.warning("cannot write monitor.json: %s", exc)
