"""The notifier: sends what is due in the outbox, in its own thread, and records the outcome.

Every round it takes the rows that are due (``pending`` and ``next_attempt_at`` passed),
groups them per recipient and channel, and sends each group as one message (a digest, or
what the throttle held back, reads as one list). A row is marked ``sending`` and committed
*before* the network call; rows found ``sending`` at start (the process died mid-send) become
``uncertain`` and are never sent again: a duplicate is worse for a teacher than a gap, and
the alert is still in the admin pages. Failures are retried with exponential backoff
(``retry_seconds`` × 2ⁿ, at most an hour) up to ``max_attempts``; permanent ones (address
refused, bot blocked) fail at once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.models import Alert
from gateway.events.store import immediate_sessions
from gateway.notify.channels import DeliveryError, EmailChannel, TelegramChannel
from gateway.notify.messages import AlertFacts, render_many
from gateway.notify.models import Notification, NotifyChannel, NotifyStatus
from gateway.notify.request_notices import enqueue_new_requests, render_request
from gateway.polling import PollingThread
from policies.database import utcnow
from policies.models import Category, Room, School, SiteRequest, StaffUser, Student

log = logging.getLogger(__name__)

MAX_BACKOFF = 3600.0
BATCH = 200


class Email(Protocol):
    def send(self, address: str, subject: str, text: str, *, message_key: str) -> None: ...


class Telegram(Protocol):
    def send(self, chat_id: str, text: str) -> None: ...


class Notifier(PollingThread):
    def __init__(self, sessions: sessionmaker[Session], config: Any, *,
                 email: Email | None = None, telegram: Telegram | None = None,
                 interval: float = 1.0) -> None:
        self.sessions = immediate_sessions(sessions)
        n = config.notifications
        self.email = email or (EmailChannel.from_config(n.email) if n.email.enabled else None)
        self.telegram = telegram or (TelegramChannel.from_config(n.telegram)
                                     if n.telegram.enabled else None)
        self.default_language = config.language
        self.email_on, self.telegram_on = n.email.enabled, n.telegram.enabled
        self.district_language = config.daily_status.district_language
        self.max_per_hour = n.max_per_hour
        self.retry_seconds = n.retry_seconds
        self.max_attempts = n.max_attempts
        self.interval = interval
        self.sent = 0
        self.failed = 0
        super().__init__()
        self._recovered = False

    # --- one round --------------------------------------------------------------------------

    def recover(self) -> int:
        """Rows left ``sending`` by a crash become ``uncertain``: never sent twice."""
        with self.sessions() as db:
            result = db.execute(update(Notification).where(
                Notification.status == NotifyStatus.SENDING.value).values(
                status=NotifyStatus.UNCERTAIN.value,
                last_error="the process stopped while sending; not sent again"))
            db.commit()
        self._recovered = True
        return result.rowcount or 0

    def poll(self, now: dt.datetime | None = None) -> int:
        """Send what is due; returns the number of messages sent."""
        if not self._recovered:
            self.recover()
        now = now or utcnow()
        with self.sessions() as db:
            enqueue_new_requests(db, now, email=self.email_on, telegram=self.telegram_on)
            due = list(db.scalars(select(Notification).where(
                Notification.status == NotifyStatus.PENDING.value,
                Notification.next_attempt_at <= now,
                Notification.channel != NotifyChannel.IN_APP.value)
                .order_by(Notification.id).limit(BATCH)))
            groups: dict[tuple[int, str], list[Notification]] = defaultdict(list)
            reports, requests = [], []
            for row in due:
                if row.report_id is not None:
                    reports.append(row)  # a daily report: one message, never throttled
                elif row.request_id is not None:
                    requests.append(row)  # a block-page request: one message each
                elif row.recipient_id is not None:
                    groups[(row.recipient_id, row.channel)].append(row)
            sent = 0
            for row in reports:
                row.status = NotifyStatus.SENDING.value
                row.attempts += 1
                db.commit()  # before the network, as below
                sent += self._deliver_report(db, row, now)
                db.commit()
            for row in requests:
                row.status = NotifyStatus.SENDING.value
                row.attempts += 1
                db.commit()
                sent += self._deliver_request(db, row, now)
                db.commit()
            for (recipient_id, channel), rows in groups.items():
                if self._throttled(db, recipient_id, channel, rows, now):
                    continue
                for row in rows:
                    row.status = NotifyStatus.SENDING.value
                    row.attempts += 1
                db.commit()  # before the network: a crash now must not cause a resend
                sent += self._deliver(db, recipient_id, channel, rows, now)
                db.commit()
        return sent

    def _throttled(self, db: Session, recipient_id: int, channel: str,
                   rows: list[Notification], now: dt.datetime) -> bool:
        hour_ago = now - dt.timedelta(hours=1)
        # Rows sent together share their sent_at: one message.
        sent_times = list(db.scalars(select(Notification.sent_at).distinct().where(
            Notification.recipient_id == recipient_id, Notification.channel == channel,
            Notification.status == NotifyStatus.SENT.value, Notification.report_id.is_(None),
            Notification.request_id.is_(None),
            Notification.sent_at > hour_ago).order_by(Notification.sent_at)))
        if len(sent_times) < self.max_per_hour:
            return False
        later = sent_times[0] + dt.timedelta(hours=1, seconds=1)
        for row in rows:
            row.next_attempt_at = later  # then they go out together, as one message
        db.commit()
        return True

    def _deliver(self, db: Session, recipient_id: int, channel: str,
                 rows: list[Notification], now: dt.datetime) -> int:
        user = db.get(StaffUser, recipient_id)
        try:
            if user is None:
                raise DeliveryError("the recipient no longer exists", permanent=True)
            language = user.language or self._school_language(db)
            facts = [alert_facts(db, row.alert_id, row.alert_version) for row in rows]
            subject, text = render_many([f for f in facts if f is not None], language)
            if channel == NotifyChannel.EMAIL.value:
                if self.email is None or not user.email:
                    raise DeliveryError("email is off or the user has no address",
                                        permanent=True)
                self.email.send(user.email, subject, text,
                                message_key=f"{rows[0].id}.{len(rows)}")
            elif channel == NotifyChannel.TELEGRAM.value:
                if self.telegram is None or not user.telegram_chat_id:
                    raise DeliveryError("Telegram is off or the user has no chat id",
                                        permanent=True)
                self.telegram.send(user.telegram_chat_id, f"{subject}\n\n{text}")
            else:
                raise DeliveryError(f"unknown channel {channel!r}", permanent=True)
        except DeliveryError as exc:
            self._failed(rows, exc, now)
            return 0
        except Exception as exc:  # a bug must not leave rows in "sending" forever
            log.exception("notifier: sending failed")
            self._failed(rows, DeliveryError(str(exc)), now)
            return 0
        stamp = utcnow()
        for row in rows:
            row.status = NotifyStatus.SENT.value
            row.sent_at = stamp
            row.last_error = None
        self.sent += 1
        return 1

    def _deliver_report(self, db: Session, row: Notification, now: dt.datetime) -> int:
        """One daily report to one address, in the addressee's language."""
        from gateway.health.models import DailyReport
        from gateway.health.report import render_report

        def compose() -> tuple[str, str, str, str]:
            report = db.get(DailyReport, row.report_id)
            if report is None or not row.address:
                raise DeliveryError("the report or its address is gone", permanent=True)
            user = db.get(StaffUser, row.recipient_id) if row.recipient_id else None
            language = ((user.language if user is not None else self.district_language)
                        or self._school_language(db))
            subject, text = render_report(report.kind, report.facts, language)
            return row.address, subject, text, text

        return self._deliver_one(row, now, compose, key=f"report-{row.id}")

    def _deliver_request(self, db: Session, row: Notification, now: dt.datetime) -> int:
        """One block-page request to one member of staff, in their language."""

        def compose() -> tuple[str, str, str, str]:
            request = db.get(SiteRequest, row.request_id)
            user = db.get(StaffUser, row.recipient_id) if row.recipient_id else None
            if request is None or user is None:
                raise DeliveryError("the request or its recipient is gone", permanent=True)
            address = user.email if row.channel == NotifyChannel.EMAIL.value else (
                user.telegram_chat_id)
            if not address:
                raise DeliveryError("the recipient has no address on this channel",
                                    permanent=True)
            room = db.get(Room, request.room_id) if request.room_id else None
            subject, text = render_request(request, room.name if room else request.room_id,
                                           user.language or self._school_language(db))
            return address, subject, text, f"{subject}\n\n{text}"

        return self._deliver_one(row, now, compose, key=f"request-{row.id}")

    def _deliver_one(self, row: Notification, now: dt.datetime,
                     compose: Callable[[], tuple[str, str, str, str]], *, key: str) -> int:
        """Send one row's message; ``compose`` gives (address, subject, email text, Telegram
        text) or raises DeliveryError. Returns 1 if sent."""
        try:
            address, subject, text, chat_text = compose()
            if row.channel == NotifyChannel.EMAIL.value:
                if self.email is None:
                    raise DeliveryError("email is off", permanent=True)
                self.email.send(address, subject, text, message_key=key)
            elif row.channel == NotifyChannel.TELEGRAM.value:
                if self.telegram is None:
                    raise DeliveryError("Telegram is off", permanent=True)
                self.telegram.send(address, chat_text)
            else:
                raise DeliveryError(f"unknown channel {row.channel!r}", permanent=True)
        except DeliveryError as exc:
            self._failed([row], exc, now)
            return 0
        except Exception as exc:  # a bug must not leave the row in "sending" forever
            log.exception("notifier: sending %s failed", key)
            self._failed([row], DeliveryError(str(exc)), now)
            return 0
        row.status = NotifyStatus.SENT.value
        row.sent_at = utcnow()
        row.last_error = None
        self.sent += 1
        return 1

    def _failed(self, rows: list[Notification], exc: DeliveryError, now: dt.datetime) -> None:
        for row in rows:
            row.last_error = str(exc)[:1000]
            if exc.permanent or row.attempts >= self.max_attempts:
                row.status = NotifyStatus.FAILED.value
                self.failed += 1
                log.warning("notification %d failed for good: %s", row.id, exc)
            else:
                delay = min(self.retry_seconds * 2 ** (row.attempts - 1), MAX_BACKOFF)
                if exc.retry_after:
                    delay = max(delay, float(exc.retry_after))
                row.status = NotifyStatus.PENDING.value
                row.next_attempt_at = now + dt.timedelta(seconds=delay)
                log.info("notification %d: %s; again in %.0f s", row.id, exc, delay)

    def _school_language(self, db: Session) -> str:
        return db.scalar(select(School.language).limit(1)) or self.default_language

    # --- in a thread ------------------------------------------------------------------------

    thread_name = "kalkan-notify"

    def run_round(self) -> None:
        self.poll()


def alert_facts(db: Session, alert_id: int, version: int = 1) -> AlertFacts | None:
    """What a message says about alert ``alert_id``, in the school's time and names."""
    alert = db.get(Alert, alert_id)
    if alert is None:
        return None
    zone = ZoneInfo(db.scalar(select(School.timezone).limit(1)) or "UTC")
    first = alert.first_seen.replace(tzinfo=dt.UTC).astimezone(zone)
    last = alert.last_seen.replace(tzinfo=dt.UTC).astimezone(zone)
    category = db.get(Category, alert.category)
    room = db.get(Room, alert.room_id) if alert.room_id else None
    student = db.get(Student, alert.student_id) if alert.student_id is not None else None
    name = student.name if student is not None and student.consent_recorded_on else None
    return AlertFacts(
        id=alert.id, rule=alert.rule, category=alert.category,
        category_names=dict(category.names) if category is not None else {},
        severity=alert.severity, attempts=alert.attempts, date=f"{first:%d.%m.%Y}",
        start=f"{first:%H:%M}", end=f"{last:%H:%M}", client=alert.client,
        device=alert.device_id, room=room.name if room is not None else None,
        class_id=alert.class_id, student_name=name, sites=tuple(alert.sites or ()),
        session_id=alert.session_id, version=version)
