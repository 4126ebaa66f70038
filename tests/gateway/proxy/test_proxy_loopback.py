"""The real proxy (explicit mode) on loopback, with a local HTTP and HTTPS origin: passthrough,
refusals, the block page in every language, escaping, and the block page's two actions."""

from __future__ import annotations

import html
import re
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from proxy_harness import (
    NO_SESSION,
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
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.events.queue import EventQueue
from gateway.proxy.master import ProxySettings, ProxyThread
from policies.database import open_engine, session_factory
from policies.engine import Engine
from policies.models import SiteRequest

LANGS = {"ky": "Бул баракка кирүү чектелген", "ru": "Доступ к этой странице ограничен",
         "kk": "Бұл бетке кіру шектелген", "uz": "Bu sahifaga kirish cheklangan",
         "en": "Access to this page is restricted"}


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory,
           demo_template: Path) -> sessionmaker[Session]:
    path = tmp_path_factory.mktemp("proxy") / "kalkan.db"
    shutil.copyfile(demo_template, path)
    sessions = session_factory(open_engine(f"sqlite:///{path}"))
    seed_loopback_school(sessions)
    return sessions


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("origin-ca")


@pytest.fixture(scope="module")
def origin(ca_dir: Path) -> Iterator[Origin]:
    ca = make_test_ca(SITES)
    origin = Origin(ca, ca_dir)
    yield origin
    origin.close()


@pytest.fixture(scope="module")
def proxy(school: sessionmaker[Session], origin: Origin) -> Iterator[ProxyThread]:
    engine = Engine.from_database(school, default_group="guests")
    settings = ProxySettings(regular=("127.0.0.1", 0), language="ky",
                             block_page_address="127.0.0.9", secret=b"k" * 32,
                             requests_per_hour=3, verify_destination=False)
    events = EventQueue()
    runner = ProxyThread(settings, engine, events, school, extra=[PointAtOrigin(origin)]).start()
    runner.events = events
    yield runner
    runner.stop()


def test_allowed_https_passes_through_untouched(proxy: ProxyThread, origin: Origin,
                                                ca_dir: Path) -> None:
    reply = via_proxy(proxy.address(), "https://bilimland.kz/lesson/1", ca_file=ca_dir / "ca.pem")
    assert reply.status == 200
    assert reply.body.startswith("origin bilimland.kz /lesson/1")
    assert reply.peer_der == origin.ca.leaf_der  # the origin's own certificate, not a copy


def test_passthrough_relays_big_bodies_and_logs_the_bytes(proxy: ProxyThread,
                                                          ca_dir: Path) -> None:
    proxy.events.take(10_000)
    reply = via_proxy(proxy.address(), "https://bilimland.kz/big", ca_file=ca_dir / "ca.pem",
                      client=TEACHER)
    assert reply.status == 200 and len(reply.body.encode("latin-1", "replace")) >= 4 << 20
    deadline = time.monotonic() + 5
    events: list = []
    while time.monotonic() < deadline and not events:  # logged when the connection ends
        events = [e for e in proxy.events.take(100) if e.channel == "tls" and e.client == TEACHER]
        time.sleep(0.05)
    assert [(e.host, e.action) for e in events] == [("bilimland.kz", "allow")]
    assert events[0].bytes > 4 << 20  # what the site sent: the body and the TLS around it


def test_blocked_https_is_refused(proxy: ProxyThread, ca_dir: Path) -> None:
    with pytest.raises(OSError, match=r"403|Tunnel"):
        via_proxy(proxy.address(), "https://roblox.com/", ca_file=ca_dir / "ca.pem")


def test_blocked_https_refused_at_the_clienthello(proxy: ProxyThread, ca_dir: Path) -> None:
    # CONNECT names an allowed site, the ClientHello a blocked one: the SNI decides.
    context = ssl.create_default_context(cafile=str(ca_dir / "ca.pem"))
    with socket.create_connection(proxy.address(), timeout=5) as raw:
        raw.sendall(b"CONNECT bilimland.kz:443 HTTP/1.1\r\nHost: bilimland.kz:443\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 200")
        with pytest.raises((OSError, ssl.SSLError)):
            context.wrap_socket(raw, server_hostname="roblox.com").recv(1)


def test_ip_literal_https_is_a_bypass_for_students(proxy: ProxyThread) -> None:
    proxy.events.take(10_000)
    with pytest.raises((OSError, ssl.SSLError)):
        via_proxy(proxy.address(), "https://192.0.2.10/", client=STUDENT)
    time.sleep(0.2)
    events = [e for e in proxy.events.take(100) if e.channel == "tls"]
    assert any(e.bypass and e.reason == "bypass_attempt" and e.action == "block" for e in events)


def test_blocked_http_url_gets_the_block_page(proxy: ProxyThread) -> None:
    reply = via_proxy(proxy.address(), "http://roblox.com/games?id=1",
                      headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert reply.status == 403
    assert LANGS["ru"] in reply.body
    assert "roblox.com" in reply.body
    assert "протокол № 1 от 2026-08-28" in reply.body  # the council decision behind the rule
    assert 'name="viewport"' in reply.body  # works on a phone
    assert reply.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("lang", sorted(LANGS))
def test_block_page_in_every_language(proxy: ProxyThread, lang: str) -> None:
    reply = via_proxy(proxy.address(), "http://roblox.com/", client=NO_SESSION,
                      headers={"Accept-Language": f"{lang};q=0.9, de;q=1.0"})
    assert reply.status == 403
    assert f'<html lang="{lang}">' in reply.body
    assert LANGS[lang] in reply.body


def test_school_default_language_when_the_browser_asks_for_none_of_ours(
        proxy: ProxyThread) -> None:
    reply = via_proxy(proxy.address(), "http://roblox.com/",
                      headers={"Accept-Language": "de-DE,fr;q=0.8"})
    assert '<html lang="ky">' in reply.body


def test_no_session_is_explained(proxy: ProxyThread) -> None:
    reply = via_proxy(proxy.address(), "http://bilimland.kz/", client=NO_SESSION,
                      headers={"Accept-Language": "en"})
    assert reply.status == 403
    assert "no lesson is open in this room now" in reply.body
    assert "lesson" not in re.findall(r'value="(\w+)"', reply.body)  # no session, no allowance


def test_allowed_http_reaches_the_origin(proxy: ProxyThread) -> None:
    reply = via_proxy(proxy.address(), "http://bilimland.kz/a?b=c")
    assert reply.status == 200 and reply.body.startswith("origin bilimland.kz /a?b=c")


def test_url_entry_allows_a_path_of_a_blocked_site(proxy: ProxyThread) -> None:
    assert via_proxy(proxy.address(), "http://vk.com/edu/x", client=SENIOR).status == 200
    assert via_proxy(proxy.address(), "http://vk.com/edu/x", client=STUDENT).status == 403


XSS = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def test_reflected_url_and_headers_are_escaped(proxy: ProxyThread) -> None:
    reply = via_proxy(proxy.address(), "http://roblox.com/" + "%22%3E%3Cscript%3E?q=" +
                      urlencode({"x": XSS})[2:] + "&raw=<script>alert(3)</script>",
                      headers={"Accept-Language": '<script>alert(4)</script>, en',
                               "User-Agent": XSS})
    assert reply.status == 403
    assert "<script>" not in reply.body
    assert "onerror=alert" not in reply.body.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in reply.body
    assert "default-src 'none'" in reply.headers["content-security-policy"]


def test_xss_in_the_language_link_and_message_is_escaped(proxy: ProxyThread) -> None:
    reply = via_proxy(proxy.address(), "http://roblox.com/?kalkan_lang=" + XSS.replace(" ", "%20"))
    assert "<script>" not in reply.body and '<html lang="ky">' in reply.body


def _form(body: str) -> dict[str, str]:
    token = re.search(r'name="token" value="([^"]+)"', body).group(1)
    return {"token": html.unescape(token)}


def _post(proxy: ProxyThread, host: str, fields: dict[str, str], client: str = STUDENT,
          lang: str = "en"):
    return via_proxy(proxy.address(), f"http://{host}/.kalkan/request", client=client,
                     method="POST", body=urlencode(fields).encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded",
                              "Accept-Language": lang})


def test_review_and_lesson_requests_are_stored(proxy: ProxyThread,
                                               school: sessionmaker[Session]) -> None:
    page = via_proxy(proxy.address(), "http://roblox.com/play", client="127.0.0.21",
                     headers={"Accept-Language": "en"})
    assert 'value="lesson"' in page.body  # a session is open and roblox is not mandatory
    form = _form(page.body)
    reply = _post(proxy, "roblox.com", {**form, "kind": "review", "message": XSS},
                  client="127.0.0.21")
    assert reply.status == 200 and "has been passed on" in reply.body
    assert "<script>" not in reply.body
    again = _post(proxy, "roblox.com", {**form, "kind": "review"}, client="127.0.0.21")
    assert "already been sent" in again.body
    lesson = _post(proxy, "roblox.com", {**form, "kind": "lesson"}, client="127.0.0.21")
    assert lesson.status == 200
    with school() as db:
        rows = db.scalars(select(SiteRequest).where(SiteRequest.client == "127.0.0.21")
                          .order_by(SiteRequest.id)).all()
    assert [(r.kind, r.host, r.group_id, r.room_id) for r in rows] == [
        ("review", "roblox.com", "middle", "loopback"),
        ("lesson", "roblox.com", "middle", "loopback")]
    assert rows[0].message == XSS  # stored as written; escaped only where shown
    assert rows[1].session_id is not None and rows[0].url == "http://roblox.com/play"


def test_report_of_a_site_that_slipped_through(proxy: ProxyThread,
                                               school: sessionmaker[Session]) -> None:
    page = via_proxy(proxy.address(), "http://127.0.0.9/", client="127.0.0.22",
                     headers={"Accept-Language": "uz"})
    assert page.status == 200 and "Sayt haqida xabar berish" in page.body
    form = _form(page.body)
    reply = _post(proxy, "127.0.0.9", {**form, "kind": "report",
                                       "url": "https://bad.example/page?x=1"},
                  client="127.0.0.22", lang="uz")
    assert reply.status == 200, reply.body
    with school() as db:
        row = db.scalars(select(SiteRequest).where(SiteRequest.client == "127.0.0.22")).one()
    assert (row.kind, row.host, row.url) == ("report", "bad.example",
                                             "https://bad.example/page?x=1")


def test_forged_or_foreign_tokens_are_refused(proxy: ProxyThread) -> None:
    page = via_proxy(proxy.address(), "http://roblox.com/", client="127.0.0.23")
    form = _form(page.body)
    stolen = _post(proxy, "roblox.com", {**form, "kind": "review"}, client="127.0.0.24")
    assert stolen.status == 400 and "out of date" in stolen.body
    forged = _post(proxy, "roblox.com", {"token": form["token"][:-2] + "xx", "kind": "review"},
                   client="127.0.0.23")
    assert forged.status == 400
    # The review-only token of a mandatory category cannot ask for a lesson allowance.
    adult = via_proxy(proxy.address(), "http://pornhub.com/", client="127.0.0.23")
    assert 'value="lesson"' not in adult.body
    refused = _post(proxy, "pornhub.com", {**_form(adult.body), "kind": "lesson"},
                    client="127.0.0.23")
    assert refused.status == 400


def test_a_flood_of_requests_is_refused_politely(proxy: ProxyThread,
                                                 school: sessionmaker[Session]) -> None:
    client = "127.0.0.25"
    statuses = []
    for n in range(6):
        page = via_proxy(proxy.address(), f"http://roblox.com/{n}", client=client)
        reply = _post(proxy, f"{n}.roblox.com" if n else "roblox.com",
                      {**_form(page.body), "kind": "review"}, client=client, lang="kk")
        statuses.append(reply.status)
        last = reply
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}
    assert "Бұл компьютерден сұраулар тым көп" in last.body
    assert last.headers["retry-after"]
    with school() as db:
        assert len(db.scalars(select(SiteRequest).where(SiteRequest.client == client)).all()) \
            <= 3


def test_teacher_may_use_an_address(proxy: ProxyThread) -> None:
    reply = via_proxy(proxy.address(), "http://127.0.0.1:80/", client=TEACHER)
    assert reply.status == 200


def test_downloads_blocked_for_students_not_for_teachers(proxy: ProxyThread) -> None:
    blocked = via_proxy(proxy.address(), "http://bilimland.kz/files/setup.exe",
                        headers={"Accept-Language": "en"})
    assert blocked.status == 403 and "download programs" in blocked.body
    by_header = via_proxy(proxy.address(), "http://bilimland.kz/get?id=7",
                          headers={"Accept-Language": "en"})
    assert by_header.status == 403 and "download programs" in by_header.body
    assert via_proxy(proxy.address(), "http://bilimland.kz/get?id=7",
                     client=TEACHER).status == 200


def test_every_decision_is_an_event(proxy: ProxyThread) -> None:
    proxy.events.take(10_000)
    via_proxy(proxy.address(), "http://roblox.com/e?x=1")
    via_proxy(proxy.address(), "http://bilimland.kz/e")
    time.sleep(0.2)
    events = proxy.events.take(100)
    by_host = {e.host: e for e in events if e.channel == "http"}
    assert by_host["roblox.com"].action == "block"
    assert by_host["roblox.com"].url == "http://roblox.com/e?x=1"
    assert by_host["bilimland.kz"].action == "allow" and by_host["bilimland.kz"].bytes


def test_explicit_mode_over_ipv6(school: sessionmaker[Session], origin: Origin,
                                 ca_dir: Path) -> None:
    """A PC set up by hand with the proxy's IPv6 address: ::1 is in the loopback room, so it
    is a student of 7B, with the same decisions as over IPv4."""
    settings = ProxySettings(regular=("::1", 0), language="en", secret=b"6" * 32,
                             verify_destination=False)
    events = EventQueue()
    proxy = ProxyThread(settings, Engine.from_database(school), events, school,
                        extra=[PointAtOrigin(origin)]).start()
    try:
        address = proxy.address()
        assert address[0] == "::1"
        allowed = via_proxy(address, "https://bilimland.kz/six", client="::1",
                            ca_file=ca_dir / "ca.pem")
        assert allowed.status == 200 and allowed.body.startswith("origin bilimland.kz /six")
        assert allowed.peer_der == origin.ca.leaf_der
        with pytest.raises(OSError, match=r"403|Tunnel"):
            via_proxy(address, "https://roblox.com/", client="::1", ca_file=ca_dir / "ca.pem")
        page = via_proxy(address, "http://roblox.com/", client="::1",
                         headers={"Accept-Language": "en"})
        assert page.status == 403 and "Access to this page is restricted" in page.body
        time.sleep(0.2)
        logged = {(e.host, e.action, e.channel) for e in events.take(100) if e.client == "::1"}
        assert ("roblox.com", "block", "http") in logged
        assert ("bilimland.kz", "allow", "tls") in logged
    finally:
        proxy.stop()
