"""Reading the access log: search, tail, and the daily summary per room and category."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, desc, func, select
from sqlalchemy.orm import Session

from gateway.alerts.models import Alert
from gateway.events.models import AccessRecord, AllowedCount, EventLoss
from policies.models import School

A = AccessRecord


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """What ``kalkan logs search`` narrows by; None means any. Times are naive UTC."""

    client: str | None = None
    room: str | None = None
    class_id: str | None = None
    category: str | None = None
    action: str | None = None
    host: str | None = None
    student: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        for column, value in ((A.client, self.client), (A.room_id, self.room),
                              (A.class_id, self.class_id), (A.category, self.category),
                              (A.action, self.action), (A.host, self.host),
                              (A.student_id, self.student)):
            if value is not None:
                query = query.where(column == value)
        if self.since is not None:
            query = query.where(A.time >= self.since)
        if self.until is not None:
            query = query.where(A.time < self.until)
        return query


def school_zone(db: Session) -> ZoneInfo:
    return ZoneInfo(db.scalar(select(School.timezone).limit(1)) or "UTC")


def search(db: Session, where: SearchFilter, limit: int = 100) -> list[AccessRecord]:
    """The newest ``limit`` events that match, newest first (each filter has a time index)."""
    query = where.apply(select(A)).order_by(desc(A.time)).limit(limit)
    return list(db.scalars(query))


def tail(db: Session, after_id: int, where: SearchFilter, *, upto: int | None = None,
         ) -> list[AccessRecord]:
    """Events written after ``after_id`` (up to ``upto``), oldest first (``logs tail``)."""
    query = where.apply(select(A).where(A.id > after_id))
    if upto is not None:
        query = query.where(A.id <= upto)
    query = query.order_by(A.id)
    return list(db.scalars(query))


def last_id(db: Session) -> int:
    return db.scalar(select(func.max(A.id))) or 0


def format_event(e: AccessRecord, zone: ZoneInfo) -> str:
    local = e.time.replace(tzinfo=dt.UTC).astimezone(zone)
    who = e.device_id or "-"
    extra = f" [{e.noise}]" if e.noise else ""
    if e.flag:
        extra += f" [{e.flag}]"
    if e.bypass:
        extra += " [bypass]"
    return (f"{local:%Y-%m-%d %H:%M:%S}  {e.action:<5} {e.channel:<4} {e.client:<15} "
            f"{who:<12} {e.room_id or '-':<10} {e.class_id or '-':<4} "
            f"{e.category or '-':<12} {e.host}  ({e.reason}){extra}")


def day_range(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The school day ``day`` as naive UTC [start, end)."""
    start = dt.datetime.combine(day, dt.time(), zone)
    end = start + dt.timedelta(days=1)
    return (start.astimezone(dt.UTC).replace(tzinfo=None),
            end.astimezone(dt.UTC).replace(tzinfo=None))


@dataclass
class DailySummary:
    day: dt.date
    blocked: int
    noise: int
    allowed: int
    by_room_category: list[tuple[str | None, str | None, int]]
    top_sites: list[tuple[str, int]]
    top_categories: list[tuple[str | None, int]]
    by_class: list[tuple[str | None, int]]
    alerts: list[Alert]
    losses: list[tuple[str, int]]

    def render(self) -> str:
        lines = [f"kalkan daily summary for {self.day:%d.%m.%Y}",
                 f"blocked attempts: {self.blocked} (plus {self.noise} background requests: "
                 f"ads, telemetry, page resources); allowed requests: {self.allowed}", ""]
        lines.append("blocked per room and category:")
        lines += [f"  {room or '(no room)':<14} {category or '(none)':<16} {n}"
                  for room, category, n in self.by_room_category] or ["  none"]
        lines.append("top blocked sites:")
        lines += [f"  {host:<40} {n}" for host, n in self.top_sites] or ["  none"]
        lines.append("top blocked categories:")
        lines += [f"  {c or '(none)':<16} {n}" for c, n in self.top_categories] or ["  none"]
        lines.append("blocked attempts per class:")
        lines += [f"  {c or '(unknown)':<10} {n}" for c, n in self.by_class] or ["  none"]
        lines.append(f"alerts: {len(self.alerts)}")
        lines += [f"  #{a.id} {a.severity:<6} {a.category:<12} {a.class_id or '-':<4} "
                  f"{a.device_id or a.client}  {a.attempts} attempts" for a in self.alerts]
        if self.losses:
            lines.append("events lost (not recorded):")
            lines += [f"  {cause}: {n}" for cause, n in self.losses]
        return "\n".join(lines)


def daily_summary(db: Session, day: dt.date, top: int = 10) -> DailySummary:
    start, end = day_range(day, school_zone(db))
    blocked = (A.action == "block", A.time >= start, A.time < end)
    real = (*blocked, A.noise.is_(None))

    def rows(query: Select[Any]) -> Sequence[Any]:
        return [tuple(r) for r in db.execute(query).all()]

    n = func.count()
    return DailySummary(
        day=day,
        blocked=db.scalar(select(n).select_from(A).where(*real)) or 0,
        noise=db.scalar(select(n).select_from(A).where(*blocked, A.noise.is_not(None))) or 0,
        allowed=(db.scalar(select(func.sum(AllowedCount.count)).where(
            AllowedCount.minute >= start, AllowedCount.minute < end)) or 0)
        + (db.scalar(select(n).select_from(A).where(A.action == "allow", A.time >= start,
                                                    A.time < end)) or 0),
        by_room_category=rows(select(A.room_id, A.category, n).where(*real)
                              .group_by(A.room_id, A.category).order_by(A.room_id, desc(n))),
        top_sites=rows(select(A.host, n).where(*real).group_by(A.host)
                       .order_by(desc(n), A.host).limit(top)),
        top_categories=rows(select(A.category, n).where(*real).group_by(A.category)
                            .order_by(desc(n)).limit(top)),
        by_class=rows(select(A.class_id, n).where(*real).group_by(A.class_id)
                      .order_by(desc(n))),
        alerts=list(db.scalars(select(Alert).where(Alert.last_seen >= start,
                                                   Alert.first_seen < end)
                               .order_by(Alert.id))),
        losses=rows(select(EventLoss.cause, func.sum(EventLoss.count))
                    .where(EventLoss.last_at >= start, EventLoss.first_at < end)
                    .group_by(EventLoss.cause)),
    )
