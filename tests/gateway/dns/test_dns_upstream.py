"""The upstream link on its own: several upstreams, health, failover, DNS-over-TLS."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from dns_fake_upstream import FakeUpstream
from dns_harness import ZONE, ask, records, wait_until

from gateway.config import parse_upstream
from gateway.dns.counters import DnsCounters
from gateway.dns.query import UpstreamFailure
from gateway.dns.upstream import UpstreamConfig, UpstreamResolver
from gateway.dns.wire import QType, encode_name

pytest_plugins = ["dns_fixtures"]

LIB_KG_A = encode_name("lib.kg") + bytes((0, QType.A, 0, 1))


def resolver(*addresses: str, **options) -> UpstreamResolver:
    servers = tuple(parse_upstream(a) for a in addresses)
    return UpstreamResolver(UpstreamConfig(servers, **options), DnsCounters())


@pytest.fixture
def two_upstreams():
    first = FakeUpstream(ZONE, host="127.0.0.77").start()
    second = FakeUpstream(ZONE, host="127.0.0.78").start()
    yield first, second
    first.stop()
    second.stop()


def test_an_upstream_that_says_servfail_is_skipped_for_one_that_answers(two_upstreams):
    failing, good = two_upstreams
    failing.mode = "servfail"

    async def run():
        link = resolver(failing.address, good.address)
        try:
            return await link.exchange(LIB_KG_A, do=False)
        finally:
            link.close()

    scan = asyncio.run(run())
    assert scan.rcode == 0 and scan.ttls == (300,)
    assert failing.queries and good.queries


def test_when_every_upstream_fails_the_link_says_so_quickly(two_upstreams):
    first, second = two_upstreams
    first.close()
    second.close()

    async def run():
        link = resolver(first.address, second.address)
        started = time.monotonic()
        try:
            with pytest.raises(UpstreamFailure):
                await link.exchange(LIB_KG_A, do=False)
        finally:
            link.close()
        return time.monotonic() - started

    assert asyncio.run(run()) < 0.5  # port unreachable is an answer: no waiting for timeouts


def test_the_fastest_upstream_comes_first(two_upstreams):
    slow, fast = two_upstreams
    slow.delay = 0.05

    async def run():
        link = resolver(slow.address, fast.address)
        try:
            for _ in range(6):
                await link.exchange(LIB_KG_A, do=False)
            return [s.upstream.host for s in link.ranked()]
        finally:
            link.close()

    assert asyncio.run(run()) == ["127.0.0.78", "127.0.0.77"]


def test_a_silent_upstream_is_marked_down_and_comes_back_by_itself(two_upstreams):
    flaky, _ = two_upstreams
    flaky.mode = "drop"

    async def run():
        link = resolver(flaky.address, health_interval=0.1, deadline=0.3)
        link.start()
        try:
            for _ in range(3):
                with pytest.raises(UpstreamFailure):
                    await link.exchange(LIB_KG_A, do=False)
            down = link.servers[0].down
            flaky.mode = "answer"
            for _ in range(30):  # the health check probes it every 0.1 s
                await asyncio.sleep(0.1)
                if not link.servers[0].down:
                    break
            return down, link.servers[0].down, await link.exchange(LIB_KG_A, do=False)
        finally:
            link.close()

    down, still_down, scan = asyncio.run(run())
    assert (down, still_down, scan.rcode) == (True, False, 0)


def test_an_upstream_overtaken_while_silent_counts_as_failing(two_upstreams):
    silent, good = two_upstreams
    silent.mode = "drop"

    async def run():
        link = resolver(silent.address, good.address)
        try:
            await link.exchange(LIB_KG_A, do=False)  # silent first (config order), then good
            return link.servers[0].failures, [s.upstream.host for s in link.ranked()]
        finally:
            link.close()

    assert asyncio.run(run()) == (1, ["127.0.0.78", "127.0.0.77"])


# --- DNS-over-TLS -----------------------------------------------------------------------------

@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``dns.test`` (it is its own CA)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        print("openssl is missing: cannot make a certificate for the DNS-over-TLS test")
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=dns.test", "-addext",
                    "subjectAltName=DNS:dns.test"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_upstream(certificate):
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    fake = FakeUpstream(ZONE, host="127.0.0.79", tls=server_context).start()
    yield fake
    fake.stop()


def test_dns_over_tls_checks_the_server_name_and_answers(start_server, tls_upstream,
                                                         certificate):
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    server = start_server(upstreams=[f"tls://{tls_upstream.address}#dns.test"],
                          tls_context=trust)
    assert records(ask(server, "lib.kg")) == ["A 192.0.2.11"]
    assert records(ask(server, "bilimland.kz")) == ["A 192.0.2.10"]
    assert {q[2] for q in tls_upstream.queries} == {"tcp"}  # one kept-open TLS connection


def test_dns_over_tls_refuses_a_server_with_the_wrong_name(start_server, tls_upstream,
                                                           certificate):
    trust = ssl.create_default_context(cafile=str(certificate[0]))
    server = start_server(upstreams=[f"tls://{tls_upstream.address}#other.test"],
                          tls_context=trust)
    started = time.monotonic()
    assert ask(server, "lib.kg").rcode() == 2  # SERVFAIL, and quickly
    assert time.monotonic() - started < 2.0
    assert tls_upstream.queries == []


class _OnlyKnowsTheTlsServer(FakeUpstream):
    """A plain upstream that can look up the DNS-over-TLS server's name and nothing else."""

    def answer(self, request, transport):
        reply = super().answer(request, transport)
        if reply is not None and str(request.q.qname).rstrip(".") != "dns.test":
            reply.rr = []
            reply.auth = []
            reply.header.rcode = 2  # SERVFAIL: the link goes on to the TLS upstream
        return reply


def test_a_tls_upstream_given_by_name_is_looked_up_through_the_plain_upstreams(
        start_server, tls_upstream, certificate):
    # "dns.test" is in no system resolver: only the plain upstream knows where it is.
    plain = _OnlyKnowsTheTlsServer(f"dns.test. 300 IN A {tls_upstream.host}",
                                   host="127.0.0.78").start()
    try:
        trust = ssl.create_default_context(cafile=str(certificate[0]))
        server = start_server(upstreams=[plain.address, f"tls://dns.test:{tls_upstream.port}"],
                              tls_context=trust)
        assert wait_until(lambda: not any(s.unresolved for s in server.chain.upstream.servers))
        assert records(ask(server, "lib.kg")) == ["A 192.0.2.11"]
        assert ("lib.kg", "A", "tcp") in tls_upstream.queries
        assert next(q for q in plain.queries if q[0] == "dns.test")[1] == "A"
    finally:
        plain.stop()
