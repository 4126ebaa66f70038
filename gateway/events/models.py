"""The access log as database rows: events, allowed counts, journal marks and loss reports.

Written only by :mod:`gateway.events.writer` (batched, raw executemany for speed), so the
columns have no foreign keys: a log line must be writable even when the device, session or
student it names has been deleted, and a key check per row would halve the insert rate on
SQLite. Erasure of a student's records is explicit (:mod:`gateway.events.privacy`).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from policies.models import Base

# SQLite makes only INTEGER PRIMARY KEY an alias of the rowid (the fast, self-numbering key);
# PostgreSQL needs 64 bits for a busy district.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class EventAction:
    """The stored values of ``action`` (those of :class:`policies.decision.Action`)."""

    ALLOW = "allow"
    BLOCK = "block"


class Noise:
    """Why a stored event is background noise rather than something a person did."""

    ADS = "ads"  # category ads: trackers and adverts that pages load by themselves
    TELEMETRY = "telemetry"  # operating system and browser telemetry (gateway/alerts/telemetry.txt)
    PREFETCH = "prefetch"  # the browser fetched it ahead of a click that may never come
    THIRD_PARTY = "third_party"  # loaded by an allowed page (``referrer``), not typed


class Flag:
    """Why an allowed event is kept individually although allowed events are only counted."""

    SEARCH_TERM = "search_term"  # a search for a listed term, where traffic is inspected


class AccessRecord(Base):
    """One kept access event: every blocked one, allowed ones when ``allowed_events: full``.

    The indexes are the ones ``kalkan logs search`` uses: each filter with the time, so that
    the newest matching rows of ten million are found by walking one index backwards.
    """

    __tablename__ = "access_events"
    __table_args__ = (
        Index("ix_access_events_client_time", "client", "time"),
        Index("ix_access_events_room_time", "room_id", "time"),
        Index("ix_access_events_class_time", "class_id", "time"),
        Index("ix_access_events_category_time", "category", "time"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    channel: Mapped[str] = mapped_column(String(8))
    client: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(253))
    action: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(64))
    qtype: Mapped[str | None] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(String(2000))
    group_id: Mapped[str | None] = mapped_column(String(64))
    room_id: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[int | None] = mapped_column(Integer)
    class_id: Mapped[str | None] = mapped_column(String(16))
    # Set only where the student's written consent is recorded (regulations 2.14–2.17).
    student_id: Mapped[int | None] = mapped_column(Integer, index=True)
    rule: Mapped[str | None] = mapped_column(String(500))
    revision: Mapped[int | None] = mapped_column(Integer)
    bypass: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    referrer: Mapped[str | None] = mapped_column(String(253))  # the allowed page that loaded it
    noise: Mapped[str | None] = mapped_column(String(16))
    flag: Mapped[str | None] = mapped_column(String(32))


class AllowedCount(Base):
    """Allowed requests per client, per domain and per minute (``allowed_events: counts``)."""

    __tablename__ = "allowed_counts"
    minute: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(253), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    category: Mapped[str | None] = mapped_column(String(64))
    group_id: Mapped[str | None] = mapped_column(String(64))
    room_id: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    class_id: Mapped[str | None] = mapped_column(String(16))
    student_id: Mapped[int | None] = mapped_column(Integer, index=True)


class JournalMark(Base):
    """How far a journal segment has been replayed: moved in the same transaction as the rows,
    so a segment is replayed exactly once however often the replay is interrupted."""

    __tablename__ = "journal_marks"
    segment: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes replayed
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)


class EventLoss(Base):
    """Events that could be kept nowhere (queue full, disk full), reported once stored."""

    __tablename__ = "event_losses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    first_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_at: Mapped[dt.datetime] = mapped_column(DateTime)
    count: Mapped[int] = mapped_column(Integer)
    # queue_full, journal_limit, disk_full or disk_error
    cause: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
    process: Mapped[str] = mapped_column(String(64), default="")


class PipelineState(Base):
    """Small named positions that must survive a restart (the detector's last event id)."""

    __tablename__ = "pipeline_state"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)


class HourCount(Base):
    """Recorded requests per hour, action, category and noise: the dashboard's charts and
    totals without counting ten million rows. Kept exact by :mod:`gateway.events.rollup`, in
    the same transaction as the rows it counts (allowed counts included).

    ``category`` and ``noise`` are '' for none: primary-key columns cannot be NULL.
    """

    __tablename__ = "access_hours"
    hour: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    action: Mapped[str] = mapped_column(String(8), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    noise: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class BlockedSiteHour(Base):
    """Blocked attempts (not noise) per hour and site: the dashboard's top blocked sites."""

    __tablename__ = "blocked_site_hours"
    hour: Mapped[dt.datetime] = mapped_column(DateTime, primary_key=True)
    host: Mapped[str] = mapped_column(String(253), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)
