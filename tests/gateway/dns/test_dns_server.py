"""The resolver as a school meets it: a running server, real clients (dnspython and dig), a
fake upstream on a loopback address, the demo school's policy."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import dns.message
import dns.opcode
import dns.rcode
import pytest
from dns_harness import (
    FLOODER,
    OUTSIDER,
    SENIOR,
    STUDENT,
    TEACHER,
    ask,
    events_for,
    has_flag,
    import_revision,
    loopback_policy,
    port_of,
    rcode,
    records,
    ttls,
    wait_until,
)

from gateway.dns.service import write_json
from policies.decision import Reason

pytest_plugins = ["dns_fixtures"]  # school, upstream, start_server, server

# --- allowed, blocked, and where answers lead --------------------------------------------------


def test_an_allowed_name_is_answered_from_the_upstream_then_from_the_cache(server, upstream):
    first = ask(server, "bilimland.kz")
    assert rcode(first) == "NOERROR"
    assert records(first) == ["A 192.0.2.10"]
    assert has_flag(first, "RA") and not has_flag(first, "AA")
    second = ask(server, "BilimLand.KZ")  # any case: the answer echoes the client's spelling
    assert records(second) == ["A 192.0.2.10"]
    assert str(second.question[0].name) == "BilimLand.KZ."
    assert [q[0] for q in upstream.queries].count("bilimland.kz") == 1
    assert server.counters.cache_hits == 1
    event = events_for(server, "bilimland.kz")[0]
    assert (event.action, event.reason, event.category) == ("allow", "category", "education")
    assert (event.group, event.room, event.qtype, event.channel) == ("middle", "loopback", "A",
                                                                      "dns")
    assert event.session is not None and event.latency_ms >= 0


def test_a_blocked_name_gets_the_block_page_address_and_never_reaches_the_upstream(
        start_server, upstream):
    server = start_server(proxy={"block_page_address": "192.0.2.250"})
    answer = ask(server, "pornhub.com")
    assert rcode(answer) == "NOERROR"
    assert records(answer) == ["A 192.0.2.250"]
    assert ttls(answer) == [10]
    assert rcode(ask(server, "pornhub.com", "AAAA")) == "NOERROR"
    assert records(ask(server, "pornhub.com", "AAAA")) == []  # no IPv6 block page: use A
    assert records(ask(server, "www.pornhub.com", "HTTPS")) == []  # no ECH keys, no hints
    assert "pornhub.com" not in [q[0] for q in upstream.queries]
    event = events_for(server, "pornhub.com")[0]
    assert (event.action, event.reason, event.category) == ("block", "mandatory_category",
                                                            "adult")


def test_without_a_block_page_address_blocked_names_point_at_the_resolver_itself(server):
    assert records(ask(server, "pornhub.com")) == [f"A {STUDENT}"]


@pytest.mark.parametrize(("mode", "a", "aaaa", "code"), [
    ("nxdomain", [], [], "NXDOMAIN"),
    ("null", ["A 0.0.0.0"], ["AAAA ::"], "NOERROR"),
])
def test_the_block_answer_is_configurable(start_server, mode, a, aaaa, code):
    server = start_server(dns={"block_answer": mode})
    assert (rcode(ask(server, "xvideos.com")), records(ask(server, "xvideos.com"))) == (code, a)
    assert records(ask(server, "xvideos.com", "AAAA")) == aaaa


def test_a_cname_into_a_blocked_domain_blocks_the_whole_answer(server, upstream):
    answer = ask(server, "video.bilimland.kz")  # an education site's CNAME to cdn.xvideos.com
    assert records(answer) == [f"A {STUDENT}"]
    assert "video.bilimland.kz" in [q[0] for q in upstream.queries]
    event = events_for(server, "video.bilimland.kz")[0]
    assert (event.action, event.category) == ("block", "adult")
    # The same answer is cached, and blocked again from the cache.
    assert records(ask(server, "video.bilimland.kz")) == [f"A {STUDENT}"]
    # A harmless CNAME passes.
    assert records(ask(server, "www.bilimland.kz")) == ["CNAME bilimland.kz.", "A 192.0.2.10"]


def test_an_https_record_that_leads_into_a_blocked_domain_is_blocked(server):
    assert records(ask(server, "lib.kg", "HTTPS")) == ['HTTPS 1 . alpn="h2"']
    assert records(ask(server, "www.lib.kg", "HTTPS")) == []


def test_staff_are_not_blocked_where_students_are(server):
    assert records(ask(server, "dns.google", source=TEACHER)) == ["A 8.8.8.8"]


def test_doh_and_vpn_names_are_marked_as_bypass_attempts(server):
    assert records(ask(server, "dns.google")) == [f"A {STUDENT}"]
    event = events_for(server, "dns.google")[0]
    assert event.bypass and event.category == "doh" and event.action == "block"


@pytest.mark.parametrize("name", ["use-application-dns.net", "mask.icloud.com",
                                  "mask-h2.icloud.com"])
def test_canaries_get_nxdomain_for_everyone(server, name, upstream):
    for client in (STUDENT, TEACHER):
        assert rcode(ask(server, name, source=client)) == "NXDOMAIN"
    assert name not in [q[0] for q in upstream.queries]
    assert events_for(server, name)[0].reason == "canary"


# --- safe search ----------------------------------------------------------------------------


def test_google_is_answered_with_forcesafesearch_for_a_group_with_safe_search(server):
    answer = ask(server, "google.kg")
    assert records(answer) == ["CNAME forcesafesearch.google.com.", "A 216.239.38.120"]
    assert records(ask(server, "www.google.kg", "AAAA")) == [
        "CNAME forcesafesearch.google.com.", "AAAA 2001:4860:4802:32::78"]
    event = events_for(server, "google.kg")[0]
    assert (event.action, event.reason) == ("allow", Reason.SAFE_SEARCH)
    assert records(ask(server, "google.kg")) == records(answer)  # from its own cache


def test_teachers_search_google_unchanged(server):
    assert records(ask(server, "google.kg", source=TEACHER)) == ["A 192.0.2.20"]


@pytest.mark.parametrize(("client", "target"), [
    (STUDENT, "restrict.youtube.com"),  # middle: strict
    (SENIOR, "restrictmoderate.youtube.com"),  # senior: moderate
])
def test_youtube_restricted_mode_follows_the_group(server, client, target):
    answer = ask(server, "www.youtube.com", source=client)
    assert records(answer, "CNAME") == [f"CNAME {target}."]
    assert len(records(answer, "A")) == 1


def test_youtube_is_unrestricted_where_the_group_says_off(server):
    assert records(ask(server, "www.youtube.com", source=TEACHER)) == ["A 192.0.2.30"]


# --- transports and sizes -----------------------------------------------------------------


def test_tcp_queries_are_answered(server):
    assert records(ask(server, "lib.kg", "AAAA", tcp=True)) == ["AAAA 2001:db8::11"]


def test_tcp_pipelined_queries_on_one_connection(server):
    port = port_of(server)
    with socket.create_connection((STUDENT, port), timeout=3) as sock:
        names = ["lib.kg", "bilimland.kz", "pornhub.com"]
        wire = b""
        for number, name in enumerate(names):
            query = dns.message.make_query(name, "A", id=number + 1).to_wire()
            wire += len(query).to_bytes(2, "big") + query
        sock.sendall(wire)
        answers = {}
        for _ in names:
            length = int.from_bytes(_read(sock, 2), "big")
            message = dns.message.from_wire(_read(sock, length))
            answers[message.id] = records(message)
    assert answers == {1: ["A 192.0.2.11"], 2: ["A 192.0.2.10"], 3: [f"A {STUDENT}"]}


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_a_truncated_upstream_answer_is_fetched_again_over_tcp(server, upstream):
    upstream.truncate.add("tc.lib.kg")
    assert records(ask(server, "tc.lib.kg")) == ["A 192.0.2.14"]
    assert ("tc.lib.kg", "A", "udp") in upstream.queries
    assert ("tc.lib.kg", "A", "tcp") in upstream.queries


def test_an_answer_too_big_for_the_client_is_truncated_and_whole_over_tcp(server):
    small = ask(server, "big.lib.kg", "TXT", edns=False)
    assert has_flag(small, "TC") and records(small) == []
    whole = ask(server, "big.lib.kg", "TXT", tcp=True)
    assert len(records(whole)) == 6 and not has_flag(whole, "TC")
    edns = ask(server, "big.lib.kg", "TXT")  # 1232 bytes is still too small for 6 × 200
    assert has_flag(edns, "TC") and edns.edns == 0


def test_edns_is_answered_with_our_own_opt_record(server):
    answer = ask(server, "lib.kg")
    assert answer.edns == 0 and answer.payload == 1232
    plain = ask(server, "lib.kg", edns=False)
    assert plain.edns == -1  # no OPT to a client that sent none (RFC 6891)


def test_an_ipv6_client_is_answered(start_server):
    server = start_server(listen=[("::1", 0)])
    answer = ask(server, "bilimland.kz", host="::1")
    assert records(answer) == ["A 192.0.2.10"]
    event = events_for(server, "bilimland.kz")[0]
    assert (event.client, event.room, event.group) == ("::1", "loopback", "middle")


def test_ipv4_and_ipv6_listeners_together(start_server):
    server = start_server(listen=[(STUDENT, 0), ("::1", 0)])
    (_, port4), (_, port6) = server.bound
    assert records(ask(port4, "lib.kg")) == ["A 192.0.2.11"]
    assert records(ask(port6, "lib.kg", host="::1")) == ["A 192.0.2.11"]


def _raw(server, packet: bytes, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (STUDENT, port_of(server)))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


def test_queries_outside_what_a_school_resolver_serves(server):
    chaos = dns.message.make_query("version.bind", "TXT", "CH")
    assert dns.message.from_wire(_raw(server, chaos.to_wire())).rcode() == dns.rcode.REFUSED
    notify = dns.message.make_query("lib.kg", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert dns.message.from_wire(_raw(server, notify.to_wire())).rcode() == dns.rcode.NOTIMP
    newer_edns = dns.message.make_query("lib.kg", "A", use_edns=1)
    answer = dns.message.from_wire(_raw(server, newer_edns.to_wire()))
    assert answer.rcode() == dns.rcode.BADVERS  # RFC 6891: we speak EDNS version 0
    response = dns.message.make_response(dns.message.make_query("lib.kg", "A"))
    assert _raw(server, response.to_wire(), timeout=0.3) is None  # responses are not answered
    assert dns.message.from_wire(_raw(server, b"\x12\x34\x01\x00\xff\xff" + bytes(6))).rcode() \
        == dns.rcode.FORMERR


# --- who may ask, and how fast ----------------------------------------------------------------


def test_a_client_outside_allowed_clients_is_refused(start_server, upstream):
    server = start_server(dns={"allowed_clients": ["127.0.0.1/32", "::1/128"]},
                          listen=[("0.0.0.0", 0)])
    assert rcode(ask(server, "lib.kg", source=STUDENT)) == "NOERROR"
    refused = ask(server, "bilimland.kz", source=OUTSIDER)
    assert rcode(refused) == "REFUSED" and records(refused) == []
    assert "bilimland.kz" not in [q[0] for q in upstream.queries]
    event = events_for(server, "bilimland.kz")[0]
    assert (event.client, event.action, event.reason) == (OUTSIDER, "block",
                                                          "client_not_allowed")


def test_a_flooding_client_is_refused_and_reported_once(start_server, caplog):
    server = start_server(rate=50.0, burst=50.0)
    port = port_of(server)
    codes = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((FLOODER, 0))
        sock.settimeout(2)
        for burst in range(6):  # 300 queries in well under a second: far more than 50 a second
            for number in range(50):
                sock.sendto(dns.message.make_query("lib.kg", "A", id=burst * 50 + number)
                            .to_wire(), (STUDENT, port))
            for _ in range(50):
                codes.append(dns.message.from_wire(sock.recv(1500)).rcode())
    refused = sum(1 for c in codes if c == dns.rcode.REFUSED)
    assert 200 <= refused <= 260  # the burst of 50 passes, the rest is refused
    assert server.counters.rate_limited == refused
    assert server.counters.rate_limited_clients == 1
    warnings = [r for r in caplog.records if "sends more than" in r.getMessage()]
    assert len(warnings) == 1 and FLOODER in warnings[0].getMessage()
    limited = [e for e in events_for(server, "lib.kg") if e.reason == "rate_limited"]
    assert len(limited) == 1  # one event a minute, not one a packet
    # Other clients do not notice.
    assert rcode(ask(server, "lib.kg")) == "NOERROR"


# --- upstream trouble -----------------------------------------------------------------------


def test_upstream_down_gives_a_stale_answer_then_servfail_within_2_seconds(server, upstream):
    assert records(ask(server, "short.lib.kg")) == ["A 192.0.2.12"]  # TTL 1 s
    time.sleep(1.2)
    upstream.close()  # nothing listens any more: ICMP port unreachable
    started = time.monotonic()
    stale = ask(server, "short.lib.kg")
    assert records(stale) == ["A 192.0.2.12"] and ttls(stale) == [30]  # RFC 8767
    started = time.monotonic()
    never_seen = ask(server, "new.lib.kg")
    assert rcode(never_seen) == "SERVFAIL"
    assert time.monotonic() - started < 2.0
    assert server.counters.stale_answers == 1 and server.counters.upstream_failures == 2


def test_an_upstream_that_never_answers_gives_servfail_within_2_seconds(server, upstream):
    upstream.mode = "drop"
    started = time.monotonic()
    answer = ask(server, "lib.kg", timeout=5)
    assert rcode(answer) == "SERVFAIL"
    assert 1.0 < time.monotonic() - started < 2.0


def test_after_a_silent_upstream_failed_stale_answers_come_at_once(server, upstream):
    assert records(ask(server, "short.lib.kg")) == ["A 192.0.2.12"]
    time.sleep(1.2)
    upstream.mode = "drop"
    started = time.monotonic()
    assert ttls(ask(server, "short.lib.kg")) == [30]
    assert 1.0 < time.monotonic() - started < 2.0  # the upstreams had their 1.8 s
    started = time.monotonic()
    assert ttls(ask(server, "short.lib.kg")) == [30]
    assert time.monotonic() - started < 0.5  # RFC 8767: no second wait for 30 s


def test_a_slow_upstream_is_waited_for(server, upstream):
    upstream.delay = 0.4
    started = time.monotonic()
    assert records(ask(server, "slow.lib.kg")) == ["A 192.0.2.13"]
    assert time.monotonic() - started >= 0.4


def test_a_dead_upstream_is_passed_over_for_a_live_one(start_server, upstream):
    from dns_fake_upstream import FakeUpstream

    dead = FakeUpstream(host="127.0.0.78").start()
    dead.mode = "drop"
    try:
        server = start_server(upstreams=[dead.address, upstream.address])
        for name in ("lib.kg", "bilimland.kz", "www.bilimland.kz", "slow.lib.kg"):
            started = time.monotonic()
            assert rcode(ask(server, name)) == "NOERROR"
            assert time.monotonic() - started < 1.0
        ranked = server.chain.upstream.ranked()
        assert ranked[0].upstream.port == upstream.port
    finally:
        dead.stop()


# --- policy changes and status --------------------------------------------------------------


def test_a_policy_change_is_applied_within_2_seconds_without_restart(start_server, school):
    server = start_server(watch=0.2)
    assert records(ask(server, "lib.kg")) == ["A 192.0.2.11"]
    data = loopback_policy()
    data["sites"]["block"].append("lib.kg")
    import_revision(school, data, protocol="8")
    changed = time.monotonic()
    assert wait_until(lambda: records(ask(server, "lib.kg")) == [f"A {STUDENT}"], 2.0)
    assert time.monotonic() - changed < 2.0
    event = events_for(server, "lib.kg")[-1]
    assert (event.action, event.reason) == ("block", "site_list")


def test_status_file_is_written_atomically(start_server, tmp_path):
    path = tmp_path / "status" / "dns.json"
    server = start_server(status_path=path)
    ask(server, "lib.kg")
    assert wait_until(lambda: path.exists() and json.loads(path.read_text())["counters"][
        "queries"] >= 0, 5)
    status = json.loads(path.read_text())
    assert set(status["counters"]) >= {"queries", "blocked", "cache_hits", "upstream_failures",
                                       "rate_limited_clients"}
    assert "dropped" in status["events"]
    write_json(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["dns.json"]  # no temporary left


# --- dig --------------------------------------------------------------------------------------

DIG = shutil.which("dig")


def _dig(server, *args: str) -> str:
    if DIG is None:
        print("dig is missing (Debian package dnsutils; `make system-deps` installs it)")
        pytest.skip("dig (dnsutils) is not installed")
    out = subprocess.run([DIG, f"@{STUDENT}", "-p", str(port_of(server)), "+time=3",
                          "+tries=1", *args], capture_output=True, text=True, timeout=10)
    return out.stdout


def test_dig_gets_an_allowed_answer(server):
    out = _dig(server, "bilimland.kz", "A")
    assert "status: NOERROR" in out and "192.0.2.10" in out


def test_dig_over_tcp_gets_a_blocked_answer(server):
    out = _dig(server, "+tcp", "pornhub.com", "A")
    assert "status: NOERROR" in out and f"IN\tA\t{STUDENT}" in out


def test_dig_with_a_cookie_and_dnssec_ok_is_answered(server):
    out = _dig(server, "+dnssec", "+cookie", "lib.kg", "AAAA")
    assert "status: NOERROR" in out and "2001:db8::11" in out and "flags: do;" in out


def test_dig_sees_the_doh_canary_as_nxdomain(server):
    assert "status: NXDOMAIN" in _dig(server, "use-application-dns.net")
