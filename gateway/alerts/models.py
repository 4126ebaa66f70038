"""Alerts as database rows: one per student or device, category and session, with evidence."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.events.models import BigId
from policies.models import Base


class Severity(StrEnum):
    LOW = "low"  # sent in the daily digest when the digest is on
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


class RuleId(StrEnum):
    """The stored names of the detection rules (``alerts.rule``): never rename."""

    REPEATED_ATTEMPTS = "repeated_attempts"  # ≥ N attempts, mandatory or serious categories
    MANY_SITES = "many_sites"  # ≥ K distinct blocked sites in other categories
    BYPASS = "bypass"  # VPN/proxy, DoH, IP literal, SNI mismatch
    SEARCH_TERMS = "search_terms"  # a listed term searched for, where traffic is inspected


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # a teacher has seen it (admin UI, later)
    CLOSED = "closed"


class Alert(Base):
    """A deliberate violation. ``dedup_key`` = subject | category | session (or school day).

    ``version`` grows only when the severity rises: notifications are unique per
    (alert, recipient, channel, version), so more evidence alone sends nothing new.
    """

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    rule: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.OPEN.value)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    client: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    # Set only where consent is recorded; otherwise the alert names device, room and class.
    student_id: Mapped[int | None] = mapped_column(Integer, index=True)
    class_id: Mapped[str | None] = mapped_column(String(16))
    room_id: Mapped[str | None] = mapped_column(String(64))
    group_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[int | None] = mapped_column(Integer)
    sites: Mapped[list[Any]] = mapped_column(default=list)  # distinct hosts, the first 20


class AlertEvidence(Base):
    """One access event behind an alert, copied so the alert outlives the 30-day event log."""

    __tablename__ = "alert_evidence"
    __table_args__ = (Index("ix_alert_evidence_event_id", "event_id"),)
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime)
    channel: Mapped[str] = mapped_column(String(8))
    host: Mapped[str] = mapped_column(String(253))
    category: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(8))
