"""The dashboard's numbers, from the hourly counts (gateway/events/rollup.py), and their cache.

A week of hourly totals is a few thousand rows whatever the size of the access log. The sites
per hour can be millions of rows in a busy week, so they are read incrementally
(:class:`SiteTotals`): a school day's or an hour's site counts are read again only when its
total in ``access_hours`` differs from what was read, which is exact (the counts only grow)
and means one hour's rows per renewal on a normal day. The figures are kept for
``DASHBOARD_CACHE_SECONDS`` and renewed in the background while the previous ones are still
served: a page view never waits for them, except the very first.
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.events.models import BlockedSiteHour, EventLoss, HourCount
from gateway.events.reports import school_zone
from policies.database import utcnow

log = logging.getLogger(__name__)

TOP = 10
DAYS = 7


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int = 0  # recorded requests, allowed and blocked
    blocked: int = 0  # blocked attempts a person made
    background: int = 0  # blocked ads, telemetry, page resources (noise)


@dataclass
class Figures:
    zone: ZoneInfo
    today: Totals
    week: Totals
    hours_today: list[tuple[str, int, int]]  # (local hour "09", allowed, blocked)
    days: list[tuple[dt.date, int, int]]
    categories_today: list[tuple[str, int]]
    categories_week: list[tuple[str, int]]
    sites_today: list[tuple[str, str, int]]  # (site, category, attempts)
    sites_week: list[tuple[str, str, int]]
    losses_week: list[tuple[str, int]]
    computed_at: dt.datetime = field(default_factory=utcnow)


def compute(db: Session, now: dt.datetime | None = None,
            sites: SiteTotals | None = None) -> Figures:
    """The figures for today and the last seven school days (``now`` naive UTC); ``sites``
    keeps what it has read between calls (a fresh one reads everything)."""
    sites = sites or SiteTotals()
    zone = school_zone(db)
    now = now or utcnow()
    local_today = now.replace(tzinfo=dt.UTC).astimezone(zone).date()
    first_day = local_today - dt.timedelta(days=DAYS - 1)
    week_start = _utc(first_day, zone)
    today_start = _utc(local_today, zone)

    rows = db.execute(select(HourCount.hour, HourCount.action, HourCount.category,
                             HourCount.noise, HourCount.count)
                      .where(HourCount.hour >= week_start)).all()
    per_hour: dict[int, list[int]] = {h: [0, 0] for h in range(24)}
    per_day: dict[dt.date, list[int]] = {first_day + dt.timedelta(days=i): [0, 0]
                                         for i in range(DAYS)}
    totals = {"today": [0, 0, 0], "week": [0, 0, 0]}
    categories: dict[str, Counter[str]] = {"today": Counter(), "week": Counter()}
    blocked_per_hour: Counter[dt.datetime] = Counter()  # real attempts: what sites add up to
    for hour, action, category, noise, count in rows:
        local = hour.replace(tzinfo=dt.UTC).astimezone(zone)
        blocked = action == "block"
        real_block = blocked and not noise
        spans = ("week", "today") if hour >= today_start else ("week",)
        for span in spans:
            t = totals[span]
            t[0] += count
            t[1] += count if real_block else 0
            t[2] += count if blocked and noise else 0
            if real_block:
                categories[span][category] += count
        if real_block:
            blocked_per_hour[hour] += count
        if blocked and noise:
            continue  # background: counted, but not drawn as a person's attempt
        column = 1 if real_block else 0
        if local.date() in per_day:
            per_day[local.date()][column] += count
        if hour >= today_start:
            per_hour[local.hour][column] += count

    return Figures(
        zone=zone, today=Totals(*totals["today"]), week=Totals(*totals["week"]),
        hours_today=[(f"{h:02d}", a, b) for h, (a, b) in per_hour.items()],
        days=[(d, a, b) for d, (a, b) in per_day.items()],
        categories_today=categories["today"].most_common(TOP),
        categories_week=categories["week"].most_common(TOP),
        **sites.top(db, blocked_per_hour, zone, today_start, first_day),
        losses_week=[tuple(r) for r in db.execute(  # type: ignore[misc]
            select(EventLoss.cause, func.sum(EventLoss.count))
            .where(EventLoss.last_at >= week_start).group_by(EventLoss.cause)).all()],
    )


Site = tuple[str, str]  # (host, category)


class SiteTotals:
    """Blocked attempts per site, per past school day and per hour of today, as last read.

    Each entry keeps the total it added up to; when ``access_hours`` says an hour or a day
    now has another total (new attempts, a journal replayed late), only that one is read
    again. Past days are summed per day in the database, so a week of a busy school is seven
    small dictionaries, not 168.
    """

    def __init__(self) -> None:
        self.days: dict[dt.date, tuple[int, Counter[Site]]] = {}
        self.hours: dict[dt.datetime, tuple[int, Counter[Site]]] = {}
        self._past: tuple[tuple[tuple[dt.date, int], ...], Counter[Site]] = ((), Counter())

    def top(self, db: Session, blocked_per_hour: Counter[dt.datetime], zone: ZoneInfo,
            today_start: dt.datetime, first_day: dt.date) -> dict[str, list[Any]]:
        per_day: Counter[dt.date] = Counter()
        for hour, n in blocked_per_hour.items():
            if hour < today_start:
                per_day[hour.replace(tzinfo=dt.UTC).astimezone(zone).date()] += n
        for day in list(self.days):
            if day < first_day:
                del self.days[day]
        for hour in list(self.hours):
            if hour < today_start:
                del self.hours[hour]  # today has become a past day: read as one day
        for day, n in per_day.items():
            if self.days.get(day, (None,))[0] != n:
                start = _utc(day, zone)
                self.days[day] = self._read(db, start, _utc(day + dt.timedelta(days=1), zone))
        for hour, n in blocked_per_hour.items():
            if hour >= today_start and self.hours.get(hour, (None,))[0] != n:
                self.hours[hour] = self._read(db, hour, hour + dt.timedelta(hours=1))
        today: Counter[Site] = Counter()
        for _n, sites in self.hours.values():
            today.update(sites)
        key = tuple(sorted((day, n) for day, (n, _sites) in self.days.items()))
        if self._past[0] != key:  # the past days' sum, made again only when one changed
            past: Counter[Site] = Counter()
            for _n, sites in self.days.values():
                past.update(sites)
            self._past = (key, past)
        week = self._past[1].copy()
        week.update(today)
        return {"sites_today": _top(today), "sites_week": _top(week)}

    @staticmethod
    def _read(db: Session, start: dt.datetime, end: dt.datetime) -> tuple[int, Counter[Site]]:
        n = func.sum(BlockedSiteHour.count)
        rows = db.execute(select(BlockedSiteHour.host, BlockedSiteHour.category, n)
                          .where(BlockedSiteHour.hour >= start, BlockedSiteHour.hour < end)
                          .group_by(BlockedSiteHour.host, BlockedSiteHour.category))
        sites: Counter[Site] = Counter({(host, category): int(count)
                                        for host, category, count in rows})
        return sum(sites.values()), sites


def _top(sites: Counter[Site]) -> list[tuple[str, str, int]]:
    """The TOP sites, most attempts first, then by name (a stable order for equal counts)."""
    best = heapq.nsmallest(TOP, sites.items(), key=lambda item: (-item[1], item[0]))
    return [(host, category, n) for (host, category), n in best]


def _utc(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    """The school's midnight starting ``day``, as naive UTC (how the tables store times)."""
    start = dt.datetime.combine(day, dt.time(), zone)
    return start.astimezone(dt.UTC).replace(tzinfo=None)


class FigureCache:
    """The last figures, renewed in the background when older than ``seconds`` (0: never
    kept, each call computes: what the tests use)."""

    def __init__(self, sessions: sessionmaker[Session], seconds: float) -> None:
        self.sessions = sessions
        self.seconds = seconds
        self.sites = SiteTotals()  # used by one computation at a time (the lock, _renewing)
        self._figures: Figures | None = None
        self._at = 0.0
        self._lock = threading.Lock()
        self._renewing = False

    def get(self) -> Figures:
        if self.seconds <= 0:
            with self.sessions() as db:
                return compute(db)  # read afresh: views in parallel share nothing
        with self._lock:
            figures, fresh = self._figures, time.monotonic() - self._at < self.seconds
            if figures is not None and not fresh and not self._renewing:
                self._renewing = True
                threading.Thread(target=self._renew, name="kalkan-dashboard",
                                 daemon=True).start()
        if figures is not None:
            return figures
        with self._lock:  # the first view: everyone waits for one computation
            if self._figures is None:
                self._figures, self._at = self._compute(), time.monotonic()
            return self._figures

    def _renew(self) -> None:
        try:
            figures = self._compute()
            with self._lock:
                self._figures, self._at = figures, time.monotonic()
        except Exception:  # the old figures stay; the next view tries again
            log.exception("dashboard: the figures could not be renewed")
        finally:
            self._renewing = False

    def _compute(self) -> Figures:
        with self.sessions() as db:
            return compute(db, sites=self.sites)
