"""The dashboard's "internet today": what the morning and evening reports say, on the
responsible person's screen, with the uplink's traffic per hour as a chart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Config
from gateway.health.models import StatusSample, UplinkOutage
from gateway.health.today import day_bounds, school_zone
from policies.database import utcnow
from tests.admin_ui.admin_client import make_app

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, staff


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.model_validate({"data_dir": str(tmp_path / "data"),
                                  "daily_status": {"tariff_mbit": 50.0}})


@pytest.fixture
def app(school: sessionmaker[Session], sqlite_url: str, config: Config) -> Flask:
    return make_app(sqlite_url, KALKAN_CONFIG=config)  # as `kalkan run` serves it


def record_a_day(school: sessionmaker[Session]) -> None:
    """An outage and, after it, a sample with a speed check: all earlier today, school time."""
    now = utcnow()
    with school() as db:
        zone = school_zone(db)
        local_now = now.replace(tzinfo=dt.UTC).astimezone(zone)
        start, _end = day_bounds(local_now.date(), zone)
        elapsed = now - start
        db.add(UplinkOutage(started_at=start + elapsed * 0.2, ended_at=start + elapsed * 0.4,
                            cause="every upstream resolver failing"))
        db.add(StatusSample(time=start + elapsed * 0.9, seconds=60.0, rx_bytes=150_000_000,
                            tx_bytes=0, upstreams_up=2, upstreams_total=2, dns_rtt_ms=12.5,
                            dns_errors=0, speed_mbit=20.0, uplink_up=True))
        db.commit()


def test_the_responsible_person_sees_the_day_of_the_internet(school, staff) -> None:
    record_a_day(school)
    person = staff("admin")
    person.post("/language", lang="en", next="/dashboard/")
    page = person.page("/dashboard/")
    assert "Internet today" in page
    assert "Internet: working." in page
    assert "Outages today: 1," in page
    assert "Speed check at" in page and "20 Mbit/s of 50 Mbit/s in the contract" in page
    assert 'aria-label="Internet traffic per hour, Mbit/s"' in page
    assert page.count('class="bar-allowed"') >= 24 + 24  # traffic per hour, and requests


@pytest.mark.parametrize("lang", ["ky", "ru", "kk", "uz"])
def test_the_section_speaks_the_readers_language(lang, school, staff) -> None:
    record_a_day(school)
    person = staff("admin")
    person.post("/language", lang=lang, next="/dashboard/")
    page = person.page("/dashboard/")
    for english in ("Internet today", "Internet: working.", "Outages today",
                    "Internet traffic per hour", "Computers seen today", "in the contract"):
        assert english not in page, (lang, english)


def test_an_admin_without_the_gateway_shows_no_such_section(school, sqlite_url) -> None:
    from tests.admin_ui.admin_client import Staff

    alone = Staff(make_app(sqlite_url).test_client())
    assert alone.sign_in("admin").status_code == 302
    assert "Internet today" not in alone.page("/dashboard/")
