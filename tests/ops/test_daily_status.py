"""The daily status: the monitor measures DNS, the uplink, a speed check and outages; the
morning report reaches the responsible person and the district by email (a real SMTP server)
and Telegram (a fake Bot API on loopback), each in their language; `kalkan status` shows the
day."""

# ruff: noqa: F811 - the fixtures imported from pipeline_harness are parameters here
from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dns.message
import dns.query
import pytest
import yaml
from click.testing import CliRunner
from pipeline_harness import (  # noqa: F401  (fixtures)
    STUDENT_IP,
    TinyUpstream,
    bot_api,
    free_port,
    notify_sections,
    pipeline_config,
    school,
    smtp,
    wait_until,
)
from sqlalchemy import select, update

from gateway.cli import main
from gateway.dns.service import DnsService
from gateway.events.writer import start_writer
from gateway.health.models import DailyReport, UplinkOutage
from gateway.health.monitor import HealthMonitor
from gateway.health.report import enqueue_report
from gateway.health.today import today_status
from gateway.health.uplink import measure_download
from gateway.notify.models import Notification
from gateway.notify.preferences import NotificationPreference
from gateway.notify.sender import Notifier
from policies.models import StaffUser

FILE_BYTES = 4 << 20


class FileServer:
    """A file of FILE_BYTES to download, for the speed check."""

    def __init__(self, port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(FILE_BYTES))
                self.end_headers()
                block = b"k" * 65536
                for _ in range(FILE_BYTES // len(block)):
                    self.wfile.write(block)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def resolver() -> Iterator[TinyUpstream]:
    upstream = TinyUpstream().start()
    yield upstream
    upstream.stop()


def at_school_time(zone: ZoneInfo, hhmm: str) -> dt.datetime:
    """Today at ``hhmm`` school time, as naive UTC (the database's time)."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    local = dt.datetime.now(zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def test_the_morning_report_tells_the_responsible_person_and_the_district_about_the_day(
        school, smtp, bot_api, resolver, tmp_path: Path) -> None:
    speed_port = free_port()
    config = pipeline_config(
        tmp_path, notifications=notify_sections(smtp, bot_api),
        dns={"upstreams": [resolver.address]},
        daily_status={"uplink_interface": "lo", "morning_at": "08:00",
                      "speed_check_url": f"http://127.0.0.1:{speed_port}/10MB.bin",
                      "speed_check_at": ["07:00", "07:20"], "tariff_mbit": 50.0,
                      "district_emails": ["ict@district.kg"],
                      "district_telegram_chats": ["-100777"], "district_language": "ru"})
    with school() as db:  # the responsible person, reachable, reading Kazakh
        db.execute(update(StaffUser).where(StaffUser.username == "admin").values(
            email="admin@school.kg", telegram_chat_id="1000", language="kk"))
        db.commit()
    zone = ZoneInfo("Asia/Bishkek")  # the demo school's

    # A real resolver writing its status, and a pupil's computer using it.
    dns_service = DnsService(config, school, listen=[("127.0.0.1", 0)],
                             status_path=config.status_directory / "dns.json")
    dns_service.start_in_thread()
    writer = start_writer(config, school, dns_service.events, process="dns-0")
    try:
        query = dns.message.make_query("lib.kg", "A")
        dns.query.udp(query, "127.0.0.1", port=dns_service.bound[0][1], timeout=2,
                      source=STUDENT_IP)
        assert wait_until(lambda: writer.stats.taken >= 1)
        assert wait_until(lambda: (config.status_directory / "dns.json").exists())

        monitor = HealthMonitor(school, config)
        # 07:00: the speed-check URL does not answer: an outage begins.
        first = monitor.sample(at_school_time(zone, "07:00"))
        assert first.uplink_up is False and first.speed_mbit is None
        # 07:20: the line is back; the speed check downloads 4 MB.
        files = FileServer(speed_port)
        try:
            second = monitor.sample(at_school_time(zone, "07:20"))
        finally:
            files.stop()
        assert second.uplink_up is True and second.speed_mbit > 0
        assert second.upstreams_up == second.upstreams_total == 1
        with school() as db:
            [outage] = db.scalars(select(UplinkOutage)).all()
            assert outage.ended_at - outage.started_at == dt.timedelta(minutes=20)
            assert "speed-check URL unreachable" in outage.cause
        # 08:01: the morning report is due, and made once however often the monitor samples.
        monitor.sample(at_school_time(zone, "08:01"))
        monitor.sample(at_school_time(zone, "08:02"))
        with school() as db:
            [report] = db.scalars(select(DailyReport)).all()
            assert report.kind == "morning"
            assert len(db.scalars(select(Notification).where(
                Notification.report_id == report.id)).all()) == 4

        assert Notifier(school, config).poll() == 4
    finally:
        writer.stop()
        dns_service.stop_thread()

    speed = f"{second.speed_mbit:.1f}".rstrip("0").rstrip(".")
    [district] = smtp.mailbox.to("ict@district.kg")
    text = district.get_content()
    assert district["Subject"].startswith("kalkan school: утренний отчёт")
    assert "Интернет: работает." in text
    assert "Перерывы сегодня: 1, всего 20 мин (07:00–07:20)." in text
    assert "DNS: отвечают 1 из 1 вышестоящих серверов" in text
    assert f"Проверка скорости в 07:20: {speed} Мбит/с из 50 Мбит/с по договору" in text
    assert "Компьютеров сегодня: 1: Loopback lab (room 101) 1." in text
    assert "Фильтрация: работает." not in text  # no proxy runs in this test, and it says so
    assert "Фильтрация: НЕ ЗАПУЩЕНО: proxy." in text
    [telegram] = bot_api.to("-100777")
    assert telegram["text"] == text.rstrip("\n")
    [responsible] = smtp.mailbox.to("admin@school.kg")
    assert "таңғы есеп" in responsible["Subject"]
    assert "Бүгінгі үзілістер: 1, барлығы 20 мин (07:00–07:20)." in responsible.get_content()
    assert "таңғы есеп" in bot_api.to("1000")[0]["text"]

    # `kalkan status` shows the day, and `--report morning` prints the report.
    config_file = tmp_path / "kalkan.yaml"
    config_file.write_text(yaml.safe_dump({
        "data_dir": str(config.data_dir),
        "database": {"url": str(school.kw["bind"].url)}}))
    runner = CliRunner()
    shown = runner.invoke(main, ["--config", str(config_file), "status"])
    assert shown.exit_code == 0, shown.output
    assert "outages: 1, 20 min in all (07:00–07:20)" in shown.output
    assert "devices seen: 1 (Loopback lab (room 101) 1)" in shown.output
    report = runner.invoke(main, ["--config", str(config_file), "status", "--report",
                                  "evening", "--language", "en"])
    assert report.exit_code == 0, report.output
    assert "end-of-day status" in report.output
    assert "Outages today: 1, 20 min in all (07:00–07:20)." in report.output


def test_the_speed_check_measures_a_download_and_names_an_unreachable_url() -> None:
    files = FileServer()
    try:
        check = measure_download(f"http://127.0.0.1:{files.port}/f", max_bytes=FILE_BYTES)
    finally:
        files.stop()
    assert check.reachable and check.bytes == FILE_BYTES
    assert check.mbit == pytest.approx(FILE_BYTES * 8 / check.seconds / 1e6)
    dead = measure_download(f"http://127.0.0.1:{free_port()}/f", max_bytes=1000, timeout=2)
    assert not dead.reachable and "refused" in dead.error.lower()


def test_every_language_says_every_part_of_the_report() -> None:
    from gateway.health.report import TEXTS, render_report

    facts = {"school": "s61", "day": "2026-11-25", "time": "17:00", "uplink": "down",
             "uplink_since": "16:40", "outages": [
                 {"start": "09:00", "end": "09:12", "minutes": 12.0, "cause": "x"},
                 {"start": "16:40", "end": None, "minutes": 20.0, "cause": "x"}],
             "outage_minutes": 32.0, "upstreams": [{"up": True}, {"up": False}],
             "dns_rtt_ms": 12.5, "dns_errors": 7, "rx_bytes": 812_400_000,
             "tx_bytes": 40_100_000, "peak_mbit": 38.2, "speed_mbit": 41.3,
             "speed_at": "07:20", "tariff_mbit": 50.0, "devices": 57,
             "devices_per_room": {"lab1": 25, "lab2": 32},
             "services": {"dns": True, "proxy": False, "monitor": True}, "events_lost": 3}
    keys = set(TEXTS["en"])
    texts = {}
    for language in ("ky", "ru", "kk", "uz", "en"):
        assert set(TEXTS[language]) == keys, language
        subject, text = render_report("evening", facts, language)
        lines = text.splitlines()
        assert lines[0] == subject and len(lines) == 9, (language, text)
        assert "16:40" in lines[1] and "09:00–09:12" in lines[2] and "16:40–" in lines[2]
        assert "812.4" in text and "41.3" in text and "83%" in text and "lab2 32" in text
        assert "proxy" in lines[-2] and "3" in lines[-1]
        texts[language] = text
    assert len(set(texts.values())) == 5  # each in its own words


def test_a_responsible_person_who_turned_the_daily_status_off_gets_no_report(
        school, smtp, bot_api, tmp_path: Path) -> None:
    config = pipeline_config(tmp_path, notifications=notify_sections(smtp, bot_api),
                             daily_status={"district_emails": ["ict@district.kg"]})
    with school() as db:
        admin = db.scalar(select(StaffUser).where(StaffUser.username == "admin"))
        admin.email, admin.telegram_chat_id = "admin@school.kg", "1000"
        # Notifications page: alerts yes, the daily status no.
        db.add(NotificationPreference(user_id=admin.id, by_email=True, by_telegram=True,
                                      alerts=True, daily_status=False, requests=True))
        db.commit()
        report = enqueue_report(db, config, "evening", today_status(config, db))
        assert report is not None
        addresses = {n.address for n in db.scalars(
            select(Notification).where(Notification.report_id == report.id))}
    assert addresses == {"ict@district.kg"}  # the district still gets it; the person does not
