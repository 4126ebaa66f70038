"""The outbox: retries with backoff, once only, throttle, digest, STARTTLS with a login."""

# ruff: noqa: F811 - the fixtures imported from pipeline_harness are parameters here
from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from pipeline_harness import (  # noqa: F401  (fixtures)
    FakeBotApi,
    SmtpServer,
    bot_api,
    free_port,
    notify_sections,
    pipeline_config,
    school,
    self_signed,
    session_id,
    smtp,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.models import Alert
from gateway.notify.channels import EmailChannel
from gateway.notify.models import Notification
from gateway.notify.outbox import OutboxPolicy, enqueue, next_digest
from gateway.notify.sender import Notifier
from policies.database import utcnow

NUMBERS = itertools.count()


def make_alert(sessions: sessionmaker[Session], *, severity: str = "high", n: int = 1,
               email: bool = True, telegram: bool = False) -> list[int]:
    ids = []
    with sessions() as db:
        for _ in range(n):
            now = utcnow()
            alert = Alert(dedup_key=f"device:lab-pc07|adult|x{next(NUMBERS)}",
                          rule="repeated_attempts", category="adult", severity=severity,
                          version=1, created_at=now, updated_at=now, first_seen=now,
                          last_seen=now, attempts=3, client="127.0.0.7", device_id="lab-pc07",
                          class_id="7B", room_id="loopback", session_id=session_id(sessions),
                          sites=["pornhub.com"])
            db.add(alert)
            db.flush()
            enqueue(db, alert, OutboxPolicy(email=email, telegram=telegram,
                                            notify_responsible=False))
            ids.append(alert.id)
        db.commit()
    return ids


def statuses(sessions: sessionmaker[Session], channel: str = "email") -> list[str]:
    with sessions() as db:
        return list(db.scalars(select(Notification.status).where(
            Notification.channel == channel).order_by(Notification.id)))


def test_smtp_down_is_retried_with_backoff_and_delivered_once_after_a_restart(
        school, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet
    config = pipeline_config(tmp_path, notifications={"email": {
        "enabled": True, "host": "127.0.0.1", "port": port, "starttls": False},
        "retry_seconds": 30.0})
    make_alert(school)
    notifier = Notifier(school, config)
    assert notifier.poll() == 0
    with school() as db:
        rows = db.scalars(select(Notification).where(Notification.channel == "email")).all()
    assert {r.status for r in rows} == {"pending"} and {r.attempts for r in rows} == {1}
    first_retry = rows[0].next_attempt_at
    assert dt.timedelta(seconds=25) < first_retry - utcnow() <= dt.timedelta(seconds=31)
    assert notifier.poll(now=first_retry + dt.timedelta(seconds=1)) == 0  # still down
    with school() as db:
        again = db.scalars(select(Notification).where(Notification.channel == "email")).all()
    assert again[0].next_attempt_at - first_retry > dt.timedelta(seconds=55)  # doubled

    server = SmtpServer(port=port).start()  # the mail server is back
    try:
        later = utcnow() + dt.timedelta(hours=1)
        restarted = Notifier(school, config)  # the state is in the database, not in memory
        assert restarted.poll(now=later) == 2  # the session teacher and the class teacher
        assert restarted.poll(now=later + dt.timedelta(hours=2)) == 0
        assert Notifier(school, config).poll(now=later + dt.timedelta(days=1)) == 0
        assert sorted(m["To"] for m in server.mailbox.messages) == ["aigul@school.kg",
                                                                    "bakyt@school.kg"]
    finally:
        server.stop()
    assert statuses(school) == ["sent", "sent"]


def test_a_message_interrupted_by_a_crash_is_never_sent_twice(school, smtp,
                                                              tmp_path: Path) -> None:
    config = pipeline_config(tmp_path, notifications=notify_sections(smtp, None))
    make_alert(school)
    with school() as db:  # the process died after marking a row "sending"
        row = db.scalars(select(Notification).where(Notification.channel == "email")).first()
        assert row is not None
        row.status = "sending"
        db.commit()
    assert Notifier(school, config).poll() == 1
    assert statuses(school) == ["uncertain", "sent"]
    assert len(smtp.mailbox.messages) == 1


def test_writing_the_outbox_twice_queues_each_message_once(school) -> None:
    [alert_id] = make_alert(school, telegram=True)
    with school() as db:
        alert = db.get(Alert, alert_id)
        assert alert is not None
        enqueue(db, alert, OutboxPolicy(email=True, telegram=False, notify_responsible=False))
        db.commit()
        rows = db.execute(select(Notification.channel, Notification.role)).all()
    assert sorted(rows) == sorted(
        [(channel, role) for channel in ("in_app", "email", "telegram")
         for role in ("session_teacher", "class_teacher")])


def test_telegram_retries_on_429_and_gives_up_on_403(school, bot_api: FakeBotApi,
                                                     tmp_path: Path) -> None:
    from policies.models import StaffUser

    with school() as db:
        for user in db.scalars(select(StaffUser).where(StaffUser.username.in_(["aigul",
                                                                               "bakyt"]))):
            user.telegram_chat_id = "1001" if user.username == "aigul" else "1002"
        db.commit()
    config = pipeline_config(tmp_path, notifications=notify_sections(None, bot_api))
    make_alert(school, email=False, telegram=True)
    bot_api.fail = (429, {"ok": False, "description": "Too Many Requests",
                          "parameters": {"retry_after": 120}})
    notifier = Notifier(school, config)
    assert notifier.poll() == 0
    with school() as db:
        waits = [r.next_attempt_at - utcnow() for r in db.scalars(
            select(Notification).where(Notification.channel == "telegram"))]
    assert all(w > dt.timedelta(seconds=110) for w in waits)
    bot_api.fail = (403, {"ok": False, "description": "Forbidden: bot was blocked"})
    assert notifier.poll(now=utcnow() + dt.timedelta(minutes=5)) == 0
    assert statuses(school, "telegram") == ["failed", "failed"]
    bot_api.fail = None
    assert notifier.poll(now=utcnow() + dt.timedelta(hours=5)) == 0 and not bot_api.messages


def test_the_throttle_holds_messages_back_and_sends_them_together(school, smtp,
                                                                  tmp_path: Path) -> None:
    config = pipeline_config(tmp_path, notifications={
        **notify_sections(smtp, None), "max_per_hour": 2})
    notifier = Notifier(school, config)
    now = utcnow() + dt.timedelta(seconds=10)
    make_alert(school)
    assert notifier.poll(now=now) == 2  # one message to each teacher
    make_alert(school)
    assert notifier.poll(now=now) == 2
    make_alert(school, n=2)
    assert notifier.poll(now=now) == 0  # two messages this hour already: held back
    assert notifier.poll(now=now + dt.timedelta(hours=1, seconds=5)) == 2
    to_aigul = smtp.mailbox.to("aigul@school.kg")
    assert len(to_aigul) == 3
    assert str(to_aigul[2]["Subject"]) == "kalkan: 2 эскертүү"  # both, in one message


def test_low_severity_alerts_wait_for_the_daily_digest(school, smtp, tmp_path: Path) -> None:
    config = pipeline_config(tmp_path, notifications={**notify_sections(smtp, None),
                                                      "digest_at": "16:00"})
    make_alert(school, severity="low", n=3)
    with school() as db:
        due = {r.next_attempt_at for r in db.scalars(select(Notification).where(
            Notification.channel == "email"))}
    assert due == {next_digest(utcnow(), "16:00", "UTC")}
    notifier = Notifier(school, config)
    assert notifier.poll() == 0
    assert notifier.poll(now=due.pop() + dt.timedelta(seconds=1)) == 2
    assert len(smtp.mailbox.to("aigul@school.kg")) == 1  # one digest of three alerts


def test_next_digest_is_in_school_time() -> None:
    # 10:00 UTC is 16:00 in Bishkek: the digest at 16:00 school time is tomorrow's.
    now = dt.datetime(2026, 11, 25, 10, 0, 1)
    assert next_digest(now, "16:00", "Asia/Bishkek") == dt.datetime(2026, 11, 26, 10, 0)
    assert next_digest(now, "17:00", "Asia/Bishkek") == dt.datetime(2026, 11, 25, 11, 0)


def test_email_with_starttls_and_a_login(tmp_path: Path) -> None:
    from aiosmtpd.smtp import AuthResult

    server_tls, client_tls = self_signed(tmp_path)
    logins = []

    def authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"kalkan", b"s3cret")
        return AuthResult(success=ok)

    server = SmtpServer(tls_context=server_tls, require_starttls=True,
                        authenticator=authenticate, auth_require_tls=True).start()
    try:
        channel = EmailChannel("127.0.0.1", server.port, starttls=True, username="kalkan",
                               password="s3cret", sender="kalkan@school.kg",
                               tls_context=client_tls)
        channel.send("aigul@school.kg", "kalkan: test", "Салам!", message_key="1.1")
        [message] = server.mailbox.messages
        assert message["Subject"] == "kalkan: test" and "Салам!" in message.get_content()
        assert logins == [(b"kalkan", b"s3cret")]
    finally:
        server.stop()
