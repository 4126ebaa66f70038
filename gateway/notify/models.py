"""The notification outbox: one row per alert version, recipient and channel, or per daily
report, channel and address."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

import gateway.health.models  # noqa: F401 - daily_reports, which report rows refer to
from policies.models import Base


class NotifyChannel(StrEnum):
    EMAIL = "email"
    TELEGRAM = "telegram"
    IN_APP = "in_app"  # rows the admin UI shows; delivered the moment they are written


class NotifyStatus(StrEnum):
    PENDING = "pending"  # waiting for next_attempt_at (a retry, the throttle or the digest)
    SENDING = "sending"  # handed to the channel; committed before the network call
    SENT = "sent"
    FAILED = "failed"  # gave up: permanent error, or retries exhausted
    UNCERTAIN = "uncertain"  # found SENDING after a crash: never resent (no duplicates)


class Notification(Base):
    """The unique key makes writing the outbox idempotent: the detector may run twice over the
    same evidence and the same message is still queued once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("alert_id", "recipient_id", "channel", "alert_version",
                         name="uq_notifications_once"),
        UniqueConstraint("report_id", "channel", "address", name="uq_notifications_report_once"),
        UniqueConstraint("request_id", "recipient_id", "channel",
                         name="uq_notifications_request_once"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # An alert row has alert_id and recipient_id; a daily-report row has report_id and
    # address, and recipient_id only when the addressee is one of the staff.
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                                 index=True)
    recipient_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"))
    report_id: Mapped[int | None] = mapped_column(
        ForeignKey("daily_reports.id", ondelete="CASCADE"), index=True)
    address: Mapped[str | None] = mapped_column(String(320))  # email address or chat id
    # A block-page request (a review, a report, "allow it for my lesson") told to staff.
    request_id: Mapped[int | None] = mapped_column(
        ForeignKey("site_requests.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    alert_version: Mapped[int] = mapped_column(Integer)
    # session_teacher, class_teacher, responsible; district for a report to the district
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=NotifyStatus.PENDING.value)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    read_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # in-app: opened in the UI
    last_error: Mapped[str | None] = mapped_column(Text)
