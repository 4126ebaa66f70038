"""Issue 8's end-to-end test: a student's queries through the real DNS server, the writer, the
detector and the notifier, to a real SMTP server and a fake Telegram Bot API, on loopback."""
# ruff: noqa: F811 - the fixtures imported from pipeline_harness are parameters here


from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest
from pipeline_harness import (  # noqa: F401  (fixtures)
    ADS,
    OTHER_IP,
    STUDENT_IP,
    FakeBotApi,
    SmtpServer,
    TinyUpstream,
    bot_api,
    notify_sections,
    pipeline_config,
    school,
    smtp,
    wait_until,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.models import Alert, AlertEvidence
from gateway.alerts.service import AlertService
from gateway.dns.service import DnsService
from gateway.events.models import AccessRecord
from gateway.events.queue import EventQueue
from gateway.events.writer import start_writer
from gateway.notify.models import Notification
from gateway.notify.sender import Notifier


class Gateway:
    """DNS on loopback with the writer, the detector and the notifier of `kalkan run`."""

    def __init__(self, sessions: sessionmaker[Session], tmp_path: Path, smtp: SmtpServer,
                 bot_api) -> None:
        self.upstream = TinyUpstream().start()
        self.config = pipeline_config(
            tmp_path, dns={"upstreams": [self.upstream.address]},
            notifications=notify_sections(smtp, bot_api),
            alerts={"episode_seconds": 0.3})
        self.sessions = sessions
        self.queue = EventQueue()
        self.dns = DnsService(self.config, sessions, listen=[("127.0.0.1", 0)],
                              events=self.queue).start_in_thread()
        self.writer = start_writer(self.config, sessions, self.queue, process="dns")
        self.alerts = AlertService(sessions, self.config, interval=0.05).start()
        self.notifier = Notifier(sessions, self.config, interval=0.05).start()

    def ask(self, name: str, qtype: str = "A", source: str = STUDENT_IP) -> str:
        query = dns.message.make_query(name, qtype)
        answer = dns.query.udp(query, "127.0.0.1", port=self.dns.bound[0][1], timeout=3,
                               source=source)
        return answer.answer[0][0].to_text() if answer.answer else ""

    def visit(self, name: str, source: str = STUDENT_IP) -> None:
        """What a browser does for one address typed in: A and AAAA."""
        self.ask(name, "A", source)
        self.ask(name, "AAAA", source)

    def stored(self) -> int:
        with self.sessions() as db:
            return db.scalar(select(func.count()).select_from(AccessRecord)) or 0

    def stop(self) -> None:
        self.notifier.stop()
        self.alerts.stop()
        self.writer.stop()
        self.dns.stop_thread()
        self.upstream.stop()


@pytest.fixture
def gateway(school, tmp_path: Path, smtp,
            bot_api) -> Iterator[Gateway]:
    g = Gateway(school, tmp_path, smtp, bot_api)
    yield g
    g.stop()


def alerts(sessions: sessionmaker[Session]) -> list[Alert]:
    with sessions() as db:
        return list(db.scalars(select(Alert).order_by(Alert.id)))


def test_a_student_trying_adult_sites_makes_one_alert_sent_once_to_both_teachers(
        gateway: Gateway, school, smtp,
        bot_api) -> None:
    adult = ["pornhub.com", "xvideos.com", "xhamster.com"]
    for _ in range(2):  # the page does not open; the student tries again
        for site in adult:
            assert gateway.ask(site) == "127.0.0.1"  # the block page: the resolver itself
            gateway.ask(site, "AAAA")
        time.sleep(0.4)  # more than episode_seconds: a new attempt

    assert wait_until(lambda: len(smtp.mailbox.messages) >= 2 and len(bot_api.messages) >= 2)
    time.sleep(0.5)  # anything that would come twice has had time to

    [alert] = alerts(school)
    assert (alert.rule, alert.category, alert.severity) == ("repeated_attempts", "adult", "high")
    assert (alert.class_id, alert.room_id, alert.device_id) == ("7B", "loopback", "lab-pc07")
    assert alert.student_id is not None and alert.session_id is not None
    assert alert.attempts == 6 and set(alert.sites) == set(adult)
    with school() as db:
        evidence = db.scalar(select(func.count()).select_from(AlertEvidence)) or 0
    assert evidence == 12  # every query: 3 sites × A and AAAA × 2 attempts

    # Once each, by email and by Telegram, to the session teacher and the class teacher,
    # each in their own language; the responsible person (no address) in-app only.
    assert len(smtp.mailbox.messages) == 2 and len(bot_api.messages) == 2
    [to_aigul] = smtp.mailbox.to("aigul@school.kg")  # class teacher, Kyrgyz
    [to_bakyt] = smtp.mailbox.to("bakyt@school.kg")  # session teacher, Russian
    ky, ru = to_aigul.get_content(), to_bakyt.get_content()
    assert "Aibek Usenov, 7B класс" in ky and "аракет кылды" in ky and "Кайда:" in ky
    assert "Aibek Usenov, класс 7B" in ru and "Где: Loopback lab (room 101)" in ru
    assert "pornhub.com" in ru and f"kalkan session close {alert.session_id}" in ru
    assert "Порнография" in str(to_bakyt["Subject"])
    [tg_aigul] = bot_api.to("1001")
    [tg_bakyt] = bot_api.to("1002")
    assert "Качан:" in tg_aigul["text"] and "Когда:" in tg_bakyt["text"]
    with school() as db:
        rows = db.execute(select(Notification.role, Notification.channel,
                                 Notification.status)).all()
    assert sorted(rows) == sorted([
        ("class_teacher", "email", "sent"), ("class_teacher", "telegram", "sent"),
        ("class_teacher", "in_app", "sent"), ("session_teacher", "email", "sent"),
        ("session_teacher", "telegram", "sent"), ("session_teacher", "in_app", "sent"),
        ("responsible", "in_app", "sent")])

    # More attempts grow the same alert and send nothing new.
    gateway.visit("xvideos.com")
    time.sleep(0.4)
    gateway.visit("xvideos.com")
    assert wait_until(lambda: alerts(school)[0].attempts == 8)
    time.sleep(0.3)
    assert len(alerts(school)) == 1
    assert len(smtp.mailbox.messages) == 2 and len(bot_api.messages) == 2


def test_an_allowed_page_with_blocked_ads_and_widgets_causes_no_alert(
        gateway: Gateway, school, smtp,
        bot_api) -> None:
    for _ in range(3):  # three page loads: the page, then what it embeds, repeated
        assert gateway.ask("lib.kg") == "192.0.2.1"
        for ad in ADS:  # ≥ distinct_sites blocked names: would be "many sites" if not noise
            gateway.visit(ad)
        gateway.visit("facebook.com")  # a blocked social widget on the page
        gateway.visit("vk.com")
        time.sleep(0.4)
    # A student at another computer only looks adult names up once each (a prefetch):
    # DNS-only look-ups that are never followed up are not attempts.
    for site in ("pornhub.com", "xvideos.com", "xhamster.com"):
        gateway.ask(site, source=OTHER_IP)
    assert wait_until(lambda: gateway.stored() >= 3 * (len(ADS) + 2) * 2 + 3)
    assert wait_until(lambda: gateway.alerts.processed >= gateway.stored())
    time.sleep(0.3)
    assert alerts(school) == []
    assert smtp.mailbox.messages == [] and bot_api.messages == []
    with school() as db:
        noise = dict(db.execute(select(AccessRecord.noise, func.count()).where(
            AccessRecord.action == "block").group_by(AccessRecord.noise)).all())
    assert noise["ads"] == 3 * len(ADS) * 2
    assert noise["third_party"] == 3 * 2 * 2  # facebook.com and vk.com after lib.kg
