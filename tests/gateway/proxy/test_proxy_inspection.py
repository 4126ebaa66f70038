"""Inspection mode on loopback: the middle school's HTTPS is decrypted with the school CA, so
the block page, safe search and the download rule work over HTTPS; other groups and the
do-not-inspect list pass through untouched."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_harness import (
    SENIOR,
    SITES,
    STUDENT,
    TEACHER,
    Origin,
    PointAtOrigin,
    make_test_ca,
    seed_loopback_school,
    via_proxy,
)
from sqlalchemy.orm import Session, sessionmaker

from gateway.events.queue import EventQueue
from gateway.proxy.ca import CERT_FILE, create_ca
from gateway.proxy.inspection import Inspection
from gateway.proxy.master import ProxySettings, ProxyThread
from policies.database import open_engine, session_factory
from policies.engine import Engine


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory,
          demo_template: Path) -> Iterator[tuple[ProxyThread, Path, Origin]]:
    base = tmp_path_factory.mktemp("inspect")
    shutil.copyfile(demo_template, base / "kalkan.db")
    sessions: sessionmaker[Session] = session_factory(open_engine(f"sqlite:///{base}/kalkan.db"))
    seed_loopback_school(sessions)
    origin_ca = make_test_ca(SITES)
    origin = Origin(origin_ca, base)
    school_ca = base / "ca"
    create_ca(school_ca, "test-school")
    settings = ProxySettings(regular=("127.0.0.1", 0), language="en", secret=b"s" * 32,
                             inspection=Inspection.load(["middle"]), ca_dir=school_ca,
                             verify_destination=False)
    proxy = ProxyThread(settings, Engine.from_database(sessions), EventQueue(), sessions,
                        extra=[PointAtOrigin(origin)],
                        extra_options={"ssl_verify_upstream_trusted_ca": str(base / "ca.pem")}
                        ).start()
    yield proxy, base, origin
    proxy.stop()
    origin.close()


def test_blocked_https_shows_the_block_page_when_inspected(setup) -> None:
    proxy, base, _ = setup
    reply = via_proxy(proxy.address(), "https://roblox.com/play", client=STUDENT,
                      ca_file=base / "ca" / CERT_FILE, headers={"Accept-Language": "kk"})
    assert reply.status == 403
    assert "Бұл бетке кіру шектелген" in reply.body and "https://roblox.com/play" in reply.body


def test_inspected_https_gets_safe_search_and_youtube_restrict(setup) -> None:
    proxy, base, _ = setup
    school = base / "ca" / CERT_FILE
    search = via_proxy(proxy.address(), "https://www.google.com/search?q=cats&safe=off",
                       client=STUDENT, ca_file=school)
    assert search.status == 200 and "safe=active" in search.body and "safe=off" not in search.body
    video = via_proxy(proxy.address(), "https://www.youtube.com/watch?v=1", client=STUDENT,
                      ca_file=school)
    assert "youtube-restrict: Strict" in video.body


def test_inspected_https_download_is_blocked(setup) -> None:
    proxy, base, _ = setup
    reply = via_proxy(proxy.address(), "https://bilimland.kz/app.apk", client=STUDENT,
                      ca_file=base / "ca" / CERT_FILE, headers={"Accept-Language": "en"})
    assert reply.status == 403 and "download programs" in reply.body


def test_groups_not_inspected_and_listed_sites_pass_through(setup) -> None:
    proxy, base, origin = setup
    # The teacher's group is not inspected: the origin's own certificate arrives.
    teacher = via_proxy(proxy.address(), "https://www.google.com/search?q=x",
                        client=TEACHER, ca_file=base / "ca.pem")
    assert teacher.peer_der == origin.ca.leaf_der and "safe=active" not in teacher.body
    # kaspi.kz is on the shipped do-not-inspect list: passed through even for the middle school.
    bank = via_proxy(proxy.address(), "https://kaspi.kz/", client=STUDENT,
                     ca_file=base / "ca.pem")
    assert bank.peer_der == origin.ca.leaf_der
    senior = via_proxy(proxy.address(), "https://www.youtube.com/", client=SENIOR,
                       ca_file=base / "ca.pem")
    assert senior.peer_der == origin.ca.leaf_der
