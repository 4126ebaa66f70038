"""Reverse lookups of private and special addresses, answered here (RFC 6303).

``1.0.168.192.in-addr.arpa PTR`` means nothing outside the school: sent upstream it only
leaks the school's addresses and waits for an answer that is always NXDOMAIN. RFC 6303 lists
the zones every resolver should answer itself (RFC 1918, loopback, link-local, the
documentation networks, IPv6 unique-local and link-local); RFC 6598's shared address space
(100.64.0.0/10, RFC 7793) is added. Names in them get NXDOMAIN with the zone's SOA, so that
clients cache the answer; the gateway's own addresses (the resolver's listen addresses and the
block page address) get a PTR to the gateway's host name, and the loopback addresses one to
``localhost``.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.dns.query import Answer, AnswerKind, DnsReason, Query, Resolver, Result
from gateway.dns.wire import CLASS_IN, QType, Question, Rcode, encode_name, make_response, record

LOCAL_TTL = 3600  # these answers never change while the gateway runs

# RFC 6303 section 4, plus 100.64.0.0/10 (RFC 6598, RFC 7793).
IPV4_ZONES = ("10", *(f"{n}.172" for n in range(16, 32)), "168.192", "0", "127", "254.169",
              "2.0.192", "100.51.198", "113.0.203", "255.255.255.255",
              *(f"{n}.100" for n in range(64, 128)))
IPV6_ZONES = ("0." * 31 + "0", "0." * 31 + "1", "d.f", "8.e.f", "9.e.f", "a.e.f", "b.e.f",
              "8.b.d.0.1.0.0.2")
LOCAL_ZONES = frozenset([f"{z}.in-addr.arpa" for z in IPV4_ZONES]
                        + [f"{z}.ip6.arpa" for z in IPV6_ZONES])

# RFC 6303 section 3: the SOA these zones are served with (MINIMUM 10800 is the negative TTL;
# RFC 2308 caps it by the SOA's own TTL, LOCAL_TTL).
_SOA_RDATA = (encode_name("localhost") + encode_name("nobody.invalid")
              + struct.pack("!IIIII", 1, 3600, 1200, 604800, 10800))


@dataclass(frozen=True, slots=True)
class LocalZonesConfig:
    """``names``: reverse name → the host name its PTR gives (the gateway's own addresses)."""

    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_addresses(cls, addresses: Iterable[str | ipaddress.IPv4Address |
                                               ipaddress.IPv6Address | None],
                      host_name: str | None = None) -> LocalZonesConfig:
        own = (host_name or socket.gethostname() or "kalkan").lower().rstrip(".")
        names = {ipaddress.ip_address("127.0.0.1").reverse_pointer: "localhost",
                 ipaddress.ip_address("::1").reverse_pointer: "localhost"}
        for address in addresses:
            if address is None:
                continue
            addr = ipaddress.ip_address(address)
            if addr.is_unspecified or addr.is_loopback:
                continue
            if _zone_of(addr.reverse_pointer) is not None:  # a public address is not ours to say
                names[addr.reverse_pointer] = own
        return cls(names)

    def describe(self) -> str:
        return (f"{len(LOCAL_ZONES)} private and special reverse zones answered here "
                f"(RFC 6303); PTR for {len(self.names)} own addresses")


def _zone_of(qname: str) -> str | None:
    """The local zone ``qname`` is in (the zone itself included), else None."""
    name = qname
    while True:
        if name in LOCAL_ZONES:
            return name
        dot = name.find(".")
        if dot < 0:
            return None
        name = name[dot + 1:]


class LocalZonesResolver:
    """Answers names in the local reverse zones; everything else goes on down the chain."""

    def __init__(self, config: LocalZonesConfig, next_link: Resolver) -> None:
        self.config = config
        self.names = config.names
        self.next = next_link
        # Empty non-terminals above our own names exist (NODATA), they are not NXDOMAIN.
        self._parents = frozenset(name.split(".", i)[-1] for name in config.names
                                  for i in range(1, name.count(".")))

    def resolve(self, query: Query) -> Result:
        qname = query.question.qname
        if not qname.endswith(".arpa"):  # the usual case: one string test per query
            return self.next.resolve(query)
        zone = _zone_of(qname)
        if zone is None:
            return self.next.resolve(query)
        query.reason = DnsReason.LOCAL_ZONE
        return self.answer(query.question, zone)

    def answer(self, question: Question, zone: str) -> Answer:
        qname, qtype = question.qname, question.qtype
        target = self.names.get(qname)
        if target is not None and qtype in (QType.PTR, QType.ANY):
            ptr = record(QType.PTR, LOCAL_TTL, encode_name(target))
            return Answer(make_response(question, Rcode.NOERROR, ptr, 1, aa=True),
                          AnswerKind.LOCAL)
        if qname == zone and qtype in (QType.SOA, QType.ANY):
            soa = record(QType.SOA, LOCAL_TTL, _SOA_RDATA)
            return Answer(make_response(question, Rcode.NOERROR, soa, 1, aa=True),
                          AnswerKind.LOCAL)
        exists = target is not None or qname == zone or qname in self._parents
        rcode = Rcode.NOERROR if exists else Rcode.NXDOMAIN
        soa = (encode_name(zone) + struct.pack("!HHIH", QType.SOA, CLASS_IN, LOCAL_TTL,
                                               len(_SOA_RDATA)) + _SOA_RDATA)
        return Answer(make_response(question, rcode, authority=soa, nscount=1, aa=True),
                      AnswerKind.LOCAL, rcode)
