"""Writing the outbox: who is told about an alert, by which channel, and when.

Recipients (regulations 2.7 and 2.8): the teacher of the session the attempts were made in,
the class teacher of the student's class, and the responsible person(s) (role
``responsible``) unless ``notifications.notify_responsible`` is false. Each is told once per
alert version on each channel they have: email if they have an address and email is on,
Telegram if they have a chat id and Telegram is on, and always in-app (the admin pages);
a person who turned alerts (or one channel) off in their notification settings
(:mod:`gateway.notify.preferences`) gets only the in-app copy.
Rows are unique per (alert, recipient, channel, version): writing them twice is harmless.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.alerts.models import Alert, Severity
from gateway.alerts.store import insert_ignoring_duplicates
from gateway.notify.models import Notification, NotifyChannel, NotifyStatus
from gateway.notify.preferences import NotifyKind, channels_for
from policies.database import utcnow
from policies.models import InternetSession, Role, SchoolClass, StaffUser


@dataclass(frozen=True, slots=True)
class OutboxPolicy:
    email: bool = False
    telegram: bool = False
    notify_responsible: bool = True
    digest: bool = True
    digest_at: str = "16:00"
    timezone: str = "UTC"

    @classmethod
    def from_config(cls, config: Any, timezone: str = "UTC") -> OutboxPolicy:
        n = config.notifications
        return cls(email=n.email.enabled, telegram=n.telegram.enabled,
                   notify_responsible=n.notify_responsible, digest=n.digest,
                   digest_at=n.digest_at, timezone=timezone)


def recipients(db: Session, alert: Alert, notify_responsible: bool = True,
               ) -> list[tuple[StaffUser, str]]:
    """``(user, role)`` to tell about ``alert``, each user once, the most specific role first."""
    found: list[tuple[StaffUser, str]] = []
    if alert.session_id is not None:
        session = db.get(InternetSession, alert.session_id)
        if session is not None:
            found.append((session.teacher, "session_teacher"))
    if alert.class_id is not None:
        school_class = db.get(SchoolClass, alert.class_id)
        if school_class is not None and school_class.class_teacher is not None:
            found.append((school_class.class_teacher, "class_teacher"))
    if notify_responsible:
        found += [(u, "responsible") for u in db.scalars(
            select(StaffUser).where(StaffUser.role == Role.RESPONSIBLE.value)
            .order_by(StaffUser.id))]
    seen: set[int] = set()
    unique = []
    for user, role in found:
        if user.id not in seen and user.active:
            seen.add(user.id)
            unique.append((user, role))
    return unique


def next_digest(now: dt.datetime, digest_at: str, timezone: str) -> dt.datetime:
    """The next digest time after ``now`` (naive UTC), at ``digest_at`` school time."""
    zone = ZoneInfo(timezone)
    local = now.replace(tzinfo=dt.UTC).astimezone(zone)
    hour, minute = (int(x) for x in digest_at.split(":"))
    at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= local:
        at += dt.timedelta(days=1)
    return at.astimezone(dt.UTC).replace(tzinfo=None)


def enqueue(db: Session, alert: Alert, policy: OutboxPolicy) -> int:
    """Queue the messages about ``alert``'s current version; returns how many rows."""
    now = utcnow()
    digest = policy.digest and alert.severity == Severity.LOW.value
    due = next_digest(now, policy.digest_at, policy.timezone) if digest else now
    rows = []
    for user, role in recipients(db, alert, policy.notify_responsible):
        channels = [NotifyChannel.IN_APP]  # always: the admin pages show every alert
        by_email, by_telegram = channels_for(db, user.id, NotifyKind.ALERTS)
        if policy.email and user.email and by_email:
            channels.append(NotifyChannel.EMAIL)
        if policy.telegram and user.telegram_chat_id and by_telegram:
            channels.append(NotifyChannel.TELEGRAM)
        for channel in channels:
            in_app = channel is NotifyChannel.IN_APP
            rows.append({
                "alert_id": alert.id, "recipient_id": user.id, "channel": channel.value,
                "alert_version": alert.version, "role": role,
                "status": (NotifyStatus.SENT if in_app else NotifyStatus.PENDING).value,
                "digest": digest and not in_app, "attempts": 0, "created_at": now,
                "next_attempt_at": now if in_app else due,
                "sent_at": now if in_app else None})
    insert_ignoring_duplicates(db, Notification.__table__, rows)
    return len(rows)
