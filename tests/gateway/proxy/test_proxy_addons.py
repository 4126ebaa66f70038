"""The addons' logic through mitmproxy's test helpers (taddons, tflow, tutils), without a
running proxy; and the pure functions they are built on, table-driven."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import tls
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils
from proxy_harness import NO_SESSION, SENIOR, STUDENT, TEACHER, seed_loopback_school

from gateway.events.queue import EventQueue
from gateway.proxy.block_page import BlockPage, PageSettings
from gateway.proxy.downloads import DownloadsAddon, response_is_download, url_is_download
from gateway.proxy.event_tap import EventTapAddon
from gateway.proxy.http_policy import DECISION, HttpPolicyAddon
from gateway.proxy.inspection import Inspection, shipped_do_not_inspect
from gateway.proxy.language import catalog, pick_language
from gateway.proxy.safe_search import SafeSearchAddon, search_rule_for
from gateway.proxy.site_requests import RequestLimiter
from gateway.proxy.sni_gate import NOTE, SniGateAddon
from policies.categories import LANGUAGES
from policies.database import open_engine, session_factory
from policies.decision import Reason
from policies.engine import Engine


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, demo_template: Path) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("addons") / "kalkan.db"
    shutil.copyfile(demo_template, path)
    sessions = session_factory(open_engine(f"sqlite:///{path}"))
    seed_loopback_school(sessions)
    yield Engine.from_database(sessions)


@pytest.fixture
def page(engine: Engine) -> BlockPage:
    return BlockPage(PageSettings("ky", b"x" * 32))


# --- language --------------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "default", "expected"), [
    ("ru-RU,ru;q=0.9,en-US;q=0.8", "ky", "ru"),
    ("en-US;q=0.8,en;q=0.7,ky;q=0.95", "ru", "ky"),
    ("kk", "ky", "kk"),
    ("uz-Cyrl-UZ", "ky", "uz"),
    ("de-DE,fr;q=0.8", "kk", "kk"),
    ("", "uz", "uz"),
    (None, "en", "en"),
    ("uk-UA", "ky", "ru"),
    ("en;q=0, ru;q=0.1", "ky", "ru"),
    ("ru;q=abc, en", "ky", "en"),
])
def test_pick_language(header: str | None, default: str, expected: str) -> None:
    assert pick_language(header, default) == expected


def test_override_wins_only_when_it_is_ours() -> None:
    assert pick_language("ru", "ky", override="uz") == "uz"
    assert pick_language("ru", "ky", override="<x>") == "ru"


def test_every_catalog_has_every_message_and_reason() -> None:
    keys = set(catalog("en"))
    for lang in LANGUAGES:
        assert set(catalog(lang)) == keys, lang
        for reason in Reason:
            if reason is not Reason.SAFE_SEARCH:  # never a block
                assert reason.value in catalog(lang)["reason"], (lang, reason)
        assert "{id}" in catalog(lang)["sent"]
        assert "{protocol}" in catalog(lang)["council"] and "{date}" in catalog(lang)["council"]


# --- SNI gate ---------------------------------------------------------------------------------

def client_hello(sni: str | None) -> tls.ClientHello:
    context = ssl.create_default_context()
    if sni is None:
        context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return tls.ClientHello(outgoing.read()[9:])  # past the record and handshake headers


def hello_data(client: str, sni: str | None, destination: tuple[str, int] | None,
               tctx: taddons.context) -> tls.ClientHelloData:
    conn = tflow.tclient_conn()
    conn.peername = (client, 50000)
    context = Context(conn, tctx.options)
    context.server.address = destination
    return tls.ClientHelloData(context, client_hello(sni))


@pytest.mark.parametrize(("client", "sni", "destination", "ignored", "refused", "reason"), [
    (STUDENT, "bilimland.kz", ("bilimland.kz", 443), True, False, "category"),
    (STUDENT, "roblox.com", ("roblox.com", 443), True, True, "site_list"),
    (STUDENT, "pornhub.com", ("192.0.2.7", 443), True, True, "mandatory_category"),
    (NO_SESSION, "bilimland.kz", ("192.0.2.7", 443), True, True, "no_session"),
    (STUDENT, None, ("192.0.2.7", 443), True, True, "bypass_attempt"),
    (STUDENT, "192.0.2.7", ("192.0.2.7", 443), True, True, "bypass_attempt"),
    (TEACHER, None, ("192.0.2.7", 443), True, False, "group_default"),
    (STUDENT, "bilimland.kz", ("roblox.com", 443), True, True, "bypass_attempt"),
    (TEACHER, "bilimland.kz", ("roblox.com", 443), True, False, "group_default"),
])
def test_sni_gate(engine: Engine, client: str, sni: str | None,
                  destination: tuple[str, int], ignored: bool, refused: bool,
                  reason: str) -> None:
    gate = SniGateAddon(engine)
    with taddons.context(gate) as tctx:
        data = hello_data(client, sni, destination, tctx)
        asyncio.run(gate.tls_clienthello(data))
    note = getattr(data, NOTE)
    assert data.ignore_connection is ignored
    assert (data.context.server.error is not None) is refused
    assert note.decision.reason.value == reason
    assert note.bypass is (reason == "bypass_attempt" or (destination[0] == "roblox.com"
                           and sni == "bilimland.kz") or sni is None)


def test_inspected_group_gets_blocked_sites_decrypted(engine: Engine) -> None:
    gate = SniGateAddon(engine, Inspection(frozenset({"middle"}), shipped_do_not_inspect()))
    with taddons.context(gate) as tctx:
        blocked = hello_data(STUDENT, "roblox.com", ("roblox.com", 443), tctx)
        asyncio.run(gate.tls_clienthello(blocked))
        bank = hello_data(STUDENT, "online.kaspi.kz", ("online.kaspi.kz", 443), tctx)
        asyncio.run(gate.tls_clienthello(bank))
        senior = hello_data(SENIOR, "www.google.com", ("www.google.com", 443), tctx)
        asyncio.run(gate.tls_clienthello(senior))
    assert not blocked.ignore_connection and blocked.context.server.error is None
    assert getattr(blocked, NOTE).inspected
    assert bank.ignore_connection  # do-not-inspect list (and kaspi.kz is not blocked)
    assert senior.ignore_connection  # the senior school is not inspected


def test_stale_block_page_answer_is_rerouted_by_name(engine: Engine) -> None:
    gate = SniGateAddon(engine, block_page_ips=frozenset({"10.10.1.1"}))
    with taddons.context(gate) as tctx:
        data = hello_data(STUDENT, "bilimland.kz", ("10.10.1.1", 443), tctx)
        asyncio.run(gate.tls_clienthello(data))
    assert data.ignore_connection and data.context.server.address == ("bilimland.kz", 443)


# --- HTTP policy, safe search, downloads, events ---------------------------------------------

def flow_for(client: str, url: str, **headers: str) -> object:
    scheme, _, rest = url.partition("://")
    host, _, path = rest.partition("/")
    request = tutils.treq(scheme=scheme.encode(), host=host, port=80 if scheme == "http" else 443,
                          authority=b"", path=("/" + path).encode(),
                          headers=tuple((k.encode(), v.encode()) for k, v in
                                        {"host": host, **headers}.items()))
    flow = tflow.tflow(req=request)
    flow.client_conn.peername = (client, 50000)
    flow.client_conn.proxy_mode = ProxyMode.parse("regular")
    return flow


@pytest.mark.parametrize(("client", "url", "status", "reason"), [
    (STUDENT, "http://bilimland.kz/a", None, "category"),
    (STUDENT, "http://roblox.com/a", 403, "site_list"),
    (SENIOR, "http://vk.com/edu/1", None, "site_list"),
    (STUDENT, "http://192.0.2.7/", 403, "bypass_attempt"),
    (TEACHER, "http://192.0.2.7/", None, "group_default"),
])
def test_http_policy(engine: Engine, page: BlockPage, client: str, url: str,
                     status: int | None, reason: str) -> None:
    addon = HttpPolicyAddon(engine, page)
    flow = flow_for(client, url, **{"accept-language": "en"})
    with taddons.context(addon):
        asyncio.run(addon.request(flow))
    assert flow.metadata[DECISION].reason.value == reason
    assert (flow.response.status_code if flow.response else None) == status


@pytest.mark.parametrize(("host", "path", "param"), [
    ("www.google.com", "/search?q=x", "safe"), ("google.kg", "/search", "safe"),
    ("www.google.co.uk", "/images", "safe"), ("www.bing.com", "/search?q=x", "adlt"),
    ("duckduckgo.com", "/?q=x", "kp"), ("yandex.ru", "/search/?text=x", "family"),
    ("ya.ru", "/search", "family"), ("mail.google.com", "/search", None),
    ("www.google.com", "/maps", None), ("notgoogle.com", "/search", None),
])
def test_search_rules(host: str, path: str, param: str | None) -> None:
    rule = search_rule_for(host, path)
    assert (rule.param if rule else None) == param


def test_safe_search_addon(engine: Engine, page: BlockPage) -> None:
    policy, safe = HttpPolicyAddon(engine, page), SafeSearchAddon(engine)
    flows = {who: flow_for(who, url) for who, url in [
        (STUDENT, "http://www.google.com/search?q=cats&safe=off"),
        (SENIOR, "http://www.youtube.com/watch?v=1"),
        (TEACHER, "http://www.google.com/search?q=cats")]}
    student_video = flow_for(STUDENT, "http://www.youtube.com/watch?v=1")
    with taddons.context(policy, safe):
        for flow in [*flows.values(), student_video]:
            asyncio.run(policy.request(flow))
            safe.request(flow)
    assert flows[STUDENT].request.query["safe"] == "active"
    assert flows[SENIOR].request.headers["YouTube-Restrict"] == "Moderate"
    assert "safe" not in flows[TEACHER].request.query  # the teachers' group: safe_search off
    assert student_video.request.headers["YouTube-Restrict"] == "Strict"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://x.kg/setup.exe", "exe"), ("http://x.kg/a/b/Game.APK?x=1", "apk"),
    ("http://x.kg/f%2Ename.msi", "msi"), ("http://x.kg/lesson.html", None),
    ("http://x.kg/video.mp4", None), ("http://x.kg/", None),
])
def test_url_is_download(url: str, expected: str | None) -> None:
    assert url_is_download(url) == expected


@pytest.mark.parametrize(("ctype", "disposition", "blocked"), [
    ("application/x-msdownload", None, True),
    ("application/vnd.android.package-archive; charset=binary", None, True),
    ("application/octet-stream", 'attachment; filename="setup.exe"', True),
    ("application/octet-stream", "attachment; filename*=UTF-8''%D0%B8%D0%B3%D1%80%D0%B0.exe",
     True),
    ("video/mp4", "attachment; filename=film.mp4", True),
    ("video/mp4", None, False),  # playing in the page
    ("audio/mpeg", "inline", False),
    ("application/pdf", "attachment; filename=homework.pdf", False),
    ("text/html", None, False),
])
def test_response_is_download(ctype: str, disposition: str | None, blocked: bool) -> None:
    assert (response_is_download(ctype, disposition) is not None) is blocked


def test_downloads_and_event_tap(engine: Engine, page: BlockPage) -> None:
    events = EventQueue()
    policy, downloads, tap = HttpPolicyAddon(engine, page), DownloadsAddon(engine, page), \
        EventTapAddon(events)
    student = flow_for(STUDENT, "http://bilimland.kz/tools/setup.exe",
                       referer="http://lib.kg/page?x=1", **{"sec-purpose": "prefetch"})
    teacher = flow_for(TEACHER, "http://bilimland.kz/tools/setup.exe")
    with taddons.context(policy, downloads, tap):
        for flow in (student, teacher):
            asyncio.run(policy.request(flow))
            downloads.request(flow)
            tap.response(flow)
    assert student.response.status_code == 403
    assert student.metadata[DECISION].reason is Reason.DOWNLOAD
    assert teacher.response is None or teacher.response.status_code != 403
    logged = events.take()
    assert [(e.client, e.action, e.reason, e.channel) for e in logged] == [
        (STUDENT, "block", "download", "http"), (TEACHER, "allow", "group_default", "http")]
    assert logged[0].url == "http://bilimland.kz/tools/setup.exe"
    assert logged[0][17:19] == ("lib.kg", True) and logged[1][17:19] == (None, False)


# --- tokens and the limiter -------------------------------------------------------------------

def test_tokens_bind_client_and_expire(page: BlockPage) -> None:
    token = page.sign({"c": "10.0.0.1", "h": "x.kg", "k": "r"}, now=1000.0)
    assert page.verify(token, "10.0.0.1", now=1001.0)["h"] == "x.kg"
    assert page.verify(token, "10.0.0.2", now=1001.0) is None
    assert page.verify(token, "10.0.0.1", now=1000.0 + 7 * 3600) is None
    assert page.verify(token.replace(".", ".A", 1), "10.0.0.1", now=1001.0) is None
    assert page.verify("", "10.0.0.1") is None and page.verify("a.b.c", "10.0.0.1") is None
    other = BlockPage(PageSettings("ky", b"y" * 32))
    assert other.verify(token, "10.0.0.1", now=1001.0) is None


def test_request_limiter_window() -> None:
    limiter = RequestLimiter(3, window=60)
    assert [limiter.allow("a", now=t) for t in (0, 1, 2, 3)] == [True, True, True, False]
    assert limiter.allow("b", now=3)  # per client
    assert limiter.allow("a", now=60.5)  # the first has left the window
    small = RequestLimiter(1, window=60, max_clients=2)
    for n in range(10):
        assert small.allow(f"c{n}", now=float(n))
    assert len(small._seen) <= 2


def test_do_not_inspect_list_is_commented_and_matches_subdomains() -> None:
    from importlib import resources

    text = resources.files("gateway.proxy").joinpath("do_not_inspect.txt").read_text("utf-8")
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            assert "#" in line, f"entry without a reason: {line!r}"
    inspection = Inspection(frozenset({"middle"}), shipped_do_not_inspect())
    assert inspection.excluded("online.mbank.kg") and inspection.excluded("kundalik.com")
    assert not inspection.excluded("notmbank.kg")
    assert not inspection.inspects("middle", "kaspi.kz")
    assert inspection.inspects("middle", "example.kg") and not inspection.inspects("senior",
                                                                                   "example.kg")
