"""What the DNS tests share: the loopback school's policy, a client, and small helpers. The
fixtures that use them are in ``dns_fixtures.py`` (``pytest_plugins = ["dns_fixtures"]``).

The loopback school is the demo school with its schedules removed (the tests run at any
hour) and one more room, ``loopback`` (127.0.0.0/8 and ::1), whose default group is the
middle school's; class 7B has a session open there. Two loopback addresses are devices
pinned to other groups: 127.0.0.3 to ``senior`` (YouTube moderate) and 127.0.0.4 to
``teachers`` (no safe search).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from sqlalchemy.orm import Session, sessionmaker

from gateway.dns.service import DnsService
from policies.decision import CouncilDecision
from policies.demo import demo_policy_data
from policies.document import render_document
from policies.revisions import import_policy

STUDENT = "127.0.0.1"  # in room loopback, group middle, class 7B's session open
OUTSIDER = "127.0.0.2"  # left out of allowed_clients by the tests that need an outsider
SENIOR = "127.0.0.3"  # device pinned to group senior: YouTube moderate
TEACHER = "127.0.0.4"  # device pinned to group teachers: no safe search
FLOODER = "127.0.0.6"

ZONE = """
bilimland.kz. 300 IN A 192.0.2.10
www.bilimland.kz. 300 IN CNAME bilimland.kz.
video.bilimland.kz. 300 IN CNAME cdn.xvideos.com.
cdn.xvideos.com. 300 IN A 192.0.2.66
pornhub.com. 300 IN A 192.0.2.67
lib.kg. 300 IN A 192.0.2.11
lib.kg. 300 IN AAAA 2001:db8::11
lib.kg. 300 IN HTTPS 1 . alpn=h2
www.lib.kg. 300 IN HTTPS 1 cdn.xvideos.com. alpn=h2
short.lib.kg. 1 IN A 192.0.2.12
slow.lib.kg. 300 IN A 192.0.2.13
tc.lib.kg. 300 IN A 192.0.2.14
google.kg. 300 IN A 192.0.2.20
www.google.kg. 300 IN A 192.0.2.20
forcesafesearch.google.com. 300 IN A 216.239.38.120
forcesafesearch.google.com. 300 IN AAAA 2001:4860:4802:32::78
www.youtube.com. 300 IN A 192.0.2.30
restrict.youtube.com. 300 IN A 216.239.38.120
restrictmoderate.youtube.com. 300 IN A 216.239.38.119
dns.google. 300 IN A 8.8.8.8
"""
BIG_TXT = [f'big.lib.kg. 300 IN TXT "{"x" * 200}{i}"' for i in range(6)]  # > 1232 bytes


def loopback_policy() -> dict[str, Any]:
    data = demo_policy_data()
    for group in data["groups"]:
        group["schedule"] = []
    data["rooms"].append({"id": "loopback", "name": "Loopback lab", "default_group": "middle",
                          "networks": ["127.0.0.0/8", "::1/128"]})
    data["devices"] += [
        {"id": "senior-pc", "ip": SENIOR, "room": "loopback", "group": "senior"},
        {"id": "teacher-pc", "ip": TEACHER, "room": "loopback", "group": "teachers"},
    ]
    return data


def import_revision(sessions: sessionmaker[Session], data: dict[str, Any],
                    protocol: str = "7") -> None:
    with sessions() as db:
        import_policy(db, render_document(data), file="test policy", author="test",
                      decision=CouncilDecision(protocol, "2026-09-01"))


def port_of(service: DnsService) -> int:
    return service.bound[0][1]


def ask(service: DnsService | int, name: str, qtype: str = "A", *, source: str | None = None,
        tcp: bool = False, edns: bool = True, host: str = "127.0.0.1",
        timeout: float = 3.0, want_dnssec: bool = False) -> dns.message.Message:
    """One query with dnspython, over UDP (or TCP), from ``source`` if given."""
    port = service if isinstance(service, int) else port_of(service)
    query = dns.message.make_query(name, qtype, use_edns=0 if edns else False,
                                   want_dnssec=want_dnssec)
    if tcp:
        return dns.query.tcp(query, host, port=port, timeout=timeout, source=source)
    return dns.query.udp(query, host, port=port, timeout=timeout, source=source,
                         ignore_trailing=False)


def rcode(message: dns.message.Message) -> str:
    return dns.rcode.to_text(message.rcode())


def records(message: dns.message.Message, rdtype: str | None = None) -> list[str]:
    """Answer records as ``type value`` text, e.g. ``A 192.0.2.10``, ``CNAME x.y.``."""
    out = []
    for rrset in message.answer:
        name = dns.rdatatype.to_text(rrset.rdtype)
        if rdtype is None or name == rdtype:
            out += [f"{name} {rdata.to_text()}" for rdata in rrset]
    return out


def ttls(message: dns.message.Message) -> list[int]:
    return [rrset.ttl for rrset in message.answer]


def events_for(service: DnsService, host: str) -> list[Any]:
    """The access events queued so far for ``host`` (they stay on the queue)."""
    pending = service.events.take(1_000_000)
    for event in pending:
        service.events.put(event)
    return [e for e in pending if e.host == host]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def free_port(host: str) -> int:
    """A port number free for both UDP and TCP on ``host``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def has_flag(message: dns.message.Message, flag: str) -> bool:
    return bool(message.flags & dns.flags.from_text(flag))
