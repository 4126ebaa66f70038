"""What the health monitor keeps: one sample a minute, uplink outages, the reports it sent."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from policies.models import Base


class StatusSample(Base):
    """The uplink and the upstream resolvers over one sampling interval (naive UTC ``time``
    is its end). Counters are deltas over the interval, so a day is a plain sum."""

    __tablename__ = "status_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    seconds: Mapped[float] = mapped_column(Float)  # the interval's length
    rx_bytes: Mapped[int | None] = mapped_column(BigInteger)  # on the uplink interface
    tx_bytes: Mapped[int | None] = mapped_column(BigInteger)
    upstreams_up: Mapped[int | None] = mapped_column(Integer)  # None: the resolver is not running
    upstreams_total: Mapped[int | None] = mapped_column(Integer)
    dns_rtt_ms: Mapped[float | None] = mapped_column(Float)  # the fastest healthy upstream's
    dns_errors: Mapped[int | None] = mapped_column(Integer)  # upstream failures in the interval
    speed_mbit: Mapped[float | None] = mapped_column(Float)  # a speed check in this interval
    uplink_up: Mapped[bool | None] = mapped_column()  # None: nothing to judge by


class UplinkOutage(Base):
    """An interval with no internet: every upstream resolver failing, or the speed-check URL
    unreachable. ``ended_at`` is NULL while it lasts."""

    __tablename__ = "uplink_outages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    cause: Mapped[str] = mapped_column(String(200))


class DailyReport(Base):
    """A morning or evening report: its facts (language-neutral) as sent; one per day and kind."""

    __tablename__ = "daily_reports"
    __table_args__ = (UniqueConstraint("day", "kind", name="uq_daily_reports_once"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column()  # the school's local date
    kind: Mapped[str] = mapped_column(String(8))  # morning, evening
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    facts: Mapped[dict] = mapped_column(JSON)
