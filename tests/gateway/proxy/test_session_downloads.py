"""Regulation 3.3: programs and media downloads are refused to students "unless their session
allows it". The teacher opens the session with ``kalkan session open --allow-downloads``; the
real proxy (explicit mode, loopback) then lets the class download, and only that class."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from proxy_harness import (
    NO_SESSION,
    SITES,
    Origin,
    PointAtOrigin,
    make_test_ca,
    seed_loopback_school,
    via_proxy,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.cli import main
from gateway.events.queue import EventQueue
from gateway.proxy.master import ProxySettings, ProxyThread
from policies.database import open_engine, session_factory
from policies.engine import Engine
from policies.models import InternetSession
from policies.sessions import close_session


@pytest.fixture
def school(tmp_path: Path, demo_template: Path) -> tuple[sessionmaker[Session], Path]:
    shutil.copyfile(demo_template, tmp_path / "kalkan.db")
    sessions = session_factory(open_engine(f"sqlite:///{tmp_path}/kalkan.db"))
    seed_loopback_school(sessions)  # class 7B's session in room loopback, downloads not allowed
    config = tmp_path / "kalkan.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                      "database": {"url": f"sqlite:///{tmp_path}/kalkan.db"}}))
    return sessions, config


@pytest.fixture
def proxy(school: tuple[sessionmaker[Session], Path], tmp_path: Path) -> Iterator[ProxyThread]:
    sessions, _ = school
    origin = Origin(make_test_ca(SITES), tmp_path)
    settings = ProxySettings(regular=("127.0.0.1", 0), language="en", secret=b"d" * 32,
                             verify_destination=False)
    runner = ProxyThread(settings, Engine.from_database(sessions), EventQueue(), sessions,
                         extra=[PointAtOrigin(origin)]).start()
    yield runner
    runner.stop()
    origin.close()


def test_teachers_session_switch_allows_downloads_for_its_class(
        school: tuple[sessionmaker[Session], Path], proxy: ProxyThread) -> None:
    sessions, config = school
    # The middle school's group does not allow downloads, and 7B's session does not either.
    assert via_proxy(proxy.address(), "http://bilimland.kz/setup.exe").status == 403
    assert via_proxy(proxy.address(), "http://bilimland.kz/get?id=7").status == 403

    with sessions() as db:
        close_session(db, db.scalar(select(InternetSession.id)))
    result = CliRunner().invoke(main, [
        "--config", str(config), "session", "open", "--room", "loopback", "--class", "7B",
        "--teacher", "aigul", "--allow-downloads"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "downloads allowed" in result.output
    listed = CliRunner().invoke(main, ["--config", str(config), "session", "list"])
    assert listed.exit_code == 0 and "downloads allowed" in listed.output
    proxy.engine.refresh(force=True)

    program = via_proxy(proxy.address(), "http://bilimland.kz/setup.exe")
    assert program.status == 200 and program.body.startswith("origin bilimland.kz /setup.exe")
    attachment = via_proxy(proxy.address(), "http://bilimland.kz/get?id=7")
    assert attachment.status == 200 and attachment.headers["content-disposition"].startswith(
        "attachment")
    # Another room, without that session, is still refused (here: no session at all).
    assert via_proxy(proxy.address(), "http://bilimland.kz/setup.exe",
                     client=NO_SESSION).status == 403


def test_sessions_without_the_switch_keep_downloads_blocked(
        school: tuple[sessionmaker[Session], Path], proxy: ProxyThread) -> None:
    sessions, config = school
    with sessions() as db:
        close_session(db, db.scalar(select(InternetSession.id)))
    result = CliRunner().invoke(main, [
        "--config", str(config), "session", "open", "--room", "loopback", "--class", "7B",
        "--teacher", "aigul"], catch_exceptions=False)
    assert result.exit_code == 0 and "downloads" not in result.output
    proxy.engine.refresh(force=True)
    reply = via_proxy(proxy.address(), "http://bilimland.kz/setup.exe",
                      headers={"Accept-Language": "en"})
    assert reply.status == 403 and "download programs" in reply.body
