"""Today's status of one gateway: internet, DNS, outages, devices per room, filtering.

:func:`today_status` is the one function that ``kalkan status``, the daily report and the
admin dashboard call; it reads the database (samples, outages, access log) and the status
files, never the running processes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.events.models import AccessRecord, AllowedCount, EventLoss
from gateway.health.models import StatusSample, UplinkOutage
from gateway.health.services import all_services, read_status_file
from policies.database import utcnow
from policies.models import Room, School


@dataclass
class Outage:
    start: str  # HH:MM school time
    end: str | None  # None: still going on
    minutes: float
    cause: str


@dataclass
class TodayStatus:
    """What a morning or evening report says, in plain values (JSON as it is)."""

    school: str
    day: str  # YYYY-MM-DD, school time
    time: str  # HH:MM school time, when this was read
    timezone: str
    uplink: str  # up, down, unknown
    uplink_since: str | None  # HH:MM of the current outage's start
    outages: list[Outage] = field(default_factory=list)
    outage_minutes: float = 0.0
    upstreams: list[dict[str, Any]] = field(default_factory=list)  # name, up, srtt_ms, errors
    dns_rtt_ms: float | None = None  # today's average of the fastest healthy upstream
    dns_errors: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    peak_mbit: float | None = None  # the busiest sampling interval, both directions
    hourly_mbit: list[float | None] = field(default_factory=list)  # 24 values: average per hour
    speed_mbit: float | None = None  # today's last speed check
    speed_at: str | None = None
    tariff_mbit: float | None = None
    devices: int = 0
    devices_per_room: dict[str, int] = field(default_factory=dict)  # room name -> devices
    services: dict[str, bool] = field(default_factory=dict)  # dns, proxy, monitor: running?
    events_lost: int = 0  # today: stored loss reports plus what running writers count

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The school day ``day`` as naive UTC [start, end)."""
    start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC).replace(tzinfo=None)
    end = (dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
           .astimezone(dt.UTC).replace(tzinfo=None))
    return start, end


def school_zone(db: Session) -> ZoneInfo:
    return ZoneInfo(db.scalar(select(School.timezone).limit(1)) or "UTC")


def today_status(config: Config, db: Session, now: dt.datetime | None = None) -> TodayStatus:
    """The gateway's status for the school day of ``now`` (naive UTC; default: now)."""
    now = now or utcnow()
    zone = school_zone(db)
    local_now = now.replace(tzinfo=dt.UTC).astimezone(zone)
    start, end = day_bounds(local_now.date(), zone)

    def local(moment: dt.datetime) -> dt.datetime:
        return moment.replace(tzinfo=dt.UTC).astimezone(zone)

    status = TodayStatus(school=config.school_id, day=local_now.date().isoformat(),
                         time=f"{local_now:%H:%M}", timezone=str(zone), uplink="unknown",
                         uplink_since=None, tariff_mbit=config.daily_status.tariff_mbit)
    _outages(status, db, start, now, local)
    _samples(status, db, start, end, local)
    _upstreams(status, config)
    _devices(status, db, start, end)
    status.services = {s.name: s.up for s in all_services(config)}
    _losses(status, config, db, start)
    return status


def _outages(status: TodayStatus, db: Session, start: dt.datetime, now: dt.datetime,
             local: Any) -> None:
    rows = db.scalars(select(UplinkOutage).where(
        (UplinkOutage.ended_at.is_(None)) | (UplinkOutage.ended_at >= start))
        .order_by(UplinkOutage.started_at)).all()
    for row in rows:
        begun = max(row.started_at, start)
        ended = row.ended_at or now
        minutes = max(0.0, (ended - begun).total_seconds() / 60)
        status.outages.append(Outage(f"{local(row.started_at):%H:%M}",
                                     None if row.ended_at is None else f"{local(ended):%H:%M}",
                                     round(minutes, 1), row.cause))
        status.outage_minutes += minutes
        if row.ended_at is None:
            status.uplink, status.uplink_since = "down", f"{local(row.started_at):%H:%M}"
    status.outage_minutes = round(status.outage_minutes, 1)


def _samples(status: TodayStatus, db: Session, start: dt.datetime, end: dt.datetime,
             local: Any) -> None:
    samples = db.scalars(select(StatusSample).where(
        StatusSample.time >= start, StatusSample.time < end).order_by(StatusSample.time)).all()
    rtts = [s.dns_rtt_ms for s in samples if s.dns_rtt_ms is not None]
    status.dns_rtt_ms = round(sum(rtts) / len(rtts), 1) if rtts else None
    status.dns_errors = sum(s.dns_errors or 0 for s in samples)
    status.rx_bytes = sum(s.rx_bytes or 0 for s in samples)
    status.tx_bytes = sum(s.tx_bytes or 0 for s in samples)
    hours: list[list[float]] = [[] for _ in range(24)]
    peak = None
    for s in samples:
        if s.rx_bytes is None or not s.seconds:
            continue
        mbit = (s.rx_bytes + (s.tx_bytes or 0)) * 8 / s.seconds / 1e6
        peak = mbit if peak is None else max(peak, mbit)
        hours[local(s.time).hour].append(mbit)
    status.peak_mbit = None if peak is None else round(peak, 3)
    status.hourly_mbit = [round(sum(h) / len(h), 3) if h else None for h in hours]
    checks = [s for s in samples if s.speed_mbit is not None]
    if checks:
        status.speed_mbit = round(checks[-1].speed_mbit, 2)  # type: ignore[arg-type]
        status.speed_at = f"{local(checks[-1].time):%H:%M}"
    if status.uplink == "unknown" and samples and samples[-1].uplink_up is not None:
        status.uplink = "up" if samples[-1].uplink_up else "down"


def _upstreams(status: TodayStatus, config: Config) -> None:
    dns = read_status_file(config.status_directory / "dns.json")
    if dns is None or dns["stale"]:
        return
    status.upstreams = [{"upstream": u.get("upstream"), "up": bool(u.get("up")),
                         "srtt_ms": u.get("srtt_ms"), "errors": u.get("errors", 0)}
                        for u in dns.get("upstreams", [])]


def _devices(status: TodayStatus, db: Session, start: dt.datetime, end: dt.datetime) -> None:
    """Distinct clients per room today, from the access log (blocked events and allowed
    counts); a client in no room counts under "—"."""
    seen: set[tuple[str | None, str]] = set()
    for table, column in ((AccessRecord, AccessRecord.time),
                          (AllowedCount, AllowedCount.minute)):
        rows = db.execute(select(table.room_id, table.client).distinct().where(
            column >= start, column < end))
        seen.update((room, client) for room, client in rows)
    names = {room_id: name for room_id, name in db.execute(select(Room.id, Room.name))}
    per_room: dict[str, int] = {}
    for room, _client in seen:
        name = names.get(room, room) if room else "—"
        per_room[name] = per_room.get(name, 0) + 1
    status.devices_per_room = dict(sorted(per_room.items()))
    status.devices = len({client for _room, client in seen})


def _losses(status: TodayStatus, config: Config, db: Session, start: dt.datetime) -> None:
    stored = db.scalar(select(func.coalesce(func.sum(EventLoss.count), 0)).where(
        EventLoss.reported_at >= start)) or 0
    unreported = 0
    for path in config.status_directory.glob("events-*.json"):
        data = read_status_file(path)
        if data is not None:  # counted but not yet stored as a loss report
            unreported += int(data.get("unreported_losses", 0)) + int(data.get("queue_dropped", 0))
    status.events_lost = int(stored) + unreported


def render_today(status: TodayStatus) -> list[str]:
    """The "today" section of ``kalkan status``, in English, one fact a line."""
    lines = [f"today ({status.day}, {status.time} {status.timezone}):"]
    if status.uplink == "down":
        lines.append(f"  internet: DOWN since {status.uplink_since}")
    else:
        lines.append(f"  internet: {status.uplink}")
    if status.outages:
        spans = ", ".join(f"{o.start}–{o.end or 'now'}" for o in status.outages)
        lines.append(f"  outages: {len(status.outages)}, {status.outage_minutes:g} min in all "
                     f"({spans})")
    else:
        lines.append("  outages: none")
    up = sum(1 for u in status.upstreams if u["up"])
    rtt = f", {status.dns_rtt_ms:g} ms on average" if status.dns_rtt_ms is not None else ""
    if status.upstreams:
        lines.append(f"  DNS upstreams: {up} of {len(status.upstreams)} answering{rtt}, "
                     f"{status.dns_errors} failures today")
    else:
        lines.append("  DNS upstreams: unknown (the resolver is not running)")
    peak = f", peak {status.peak_mbit:g} Mbit/s" if status.peak_mbit is not None else ""
    lines.append(f"  traffic: {status.rx_bytes / 1e6:.1f} MB in, {status.tx_bytes / 1e6:.1f} MB "
                 f"out{peak}")
    if status.speed_mbit is not None:
        tariff = (f" of {status.tariff_mbit:g} contracted "
                  f"({100 * status.speed_mbit / status.tariff_mbit:.0f}%)"
                  if status.tariff_mbit else "")
        lines.append(f"  speed check at {status.speed_at}: {status.speed_mbit:g} Mbit/s{tariff}")
    rooms = ", ".join(f"{name} {n}" for name, n in status.devices_per_room.items())
    lines.append(f"  devices seen: {status.devices}" + (f" ({rooms})" if rooms else ""))
    services = ", ".join(f"{name} {'running' if up else 'NOT RUNNING'}"
                         for name, up in status.services.items())
    lines.append(f"  services: {services}")
    lines.append(f"  access records lost today: {status.events_lost}")
    return lines
