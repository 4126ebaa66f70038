"""Does a site name belong to the address a client connects to?

In transparent mode the client chose the address itself (from DNS, or from a hosts file or a
hard-coded list) and the proxy connects there; only the name (TLS SNI or HTTP Host) is decided
on. A student who writes ``allowed.kg`` on a blocked server's address would get through, so the
proxy checks that the address is one that the name resolves to. That is the answer our DNS gave
for that client, as far as the proxy can tell without sharing memory with the resolver process:
the same upstreams, plus the safe-search targets the resolver may have answered instead
(``gateway/dns/safe_search.txt``).

Names with many rotating addresses (CDNs) are why the answers are kept as a union for
``keep`` seconds, and why a miss is checked once more against a fresh answer before it counts.
When the upstreams do not answer at all, the connection is not held against the student: the
name itself was already allowed (fail open, logged).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from dnslib import QTYPE, DNSRecord

log = logging.getLogger(__name__)

_MAX_NAMES = 50_000


@dataclass(frozen=True, slots=True)
class DestinationSettings:
    upstreams: tuple[tuple[str, int], ...]  # plain DNS servers: (ip, port)
    aliases: Mapping[str, frozenset[str]] = field(default_factory=dict)  # name → safe targets
    timeout: float = 1.5
    keep: float = 600.0  # seconds an address stays known for a name
    refresh_after: float = 5.0  # a miss against answers older than this asks again


class AddressBook:
    """Answers :meth:`belongs` — is this address one of this name's? — with a small cache."""

    def __init__(self, settings: DestinationSettings) -> None:
        self.settings = settings
        # name → (address → last seen, time of the last answer)
        self._known: dict[str, tuple[dict[str, float], float]] = {}
        self._pending: dict[str, asyncio.Future[bool]] = {}

    async def belongs(self, name: str, address: str) -> bool | None:
        """True if ``address`` is one of ``name``'s; False if not; None if nobody answered."""
        address = _canonical(address)
        now = time.monotonic()
        known = self._known.get(name)
        if known is not None:
            addresses, asked = known
            seen = addresses.get(address)
            if seen is not None and now - seen < self.settings.keep:
                return True
            if now - asked < self.settings.refresh_after:
                return False
        answered = await self._refresh(name)
        if not answered:
            return None
        seen = self._known[name][0].get(address)
        return seen is not None

    async def _refresh(self, name: str) -> bool:
        pending = self._pending.get(name)
        if pending is not None:  # many connections to one new name: ask upstream once
            return await asyncio.shield(pending)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending[name] = future
        try:
            names = [name, *sorted(self.settings.aliases.get(name, ()))]
            results = await asyncio.gather(*(self._resolve(n) for n in names))
            found = set().union(*(r for r in results if r is not None))
            answered = any(r is not None for r in results)
            if answered:
                self._remember(name, found)
            future.set_result(answered)
            return answered
        except Exception as exc:  # the future must not be left pending for the waiters
            future.set_exception(exc)
            raise
        finally:
            del self._pending[name]

    def _remember(self, name: str, found: Iterable[str]) -> None:
        now = time.monotonic()
        if name not in self._known and len(self._known) >= _MAX_NAMES:
            self._known.clear()  # rare: a flood of distinct names; start again
        addresses = self._known.get(name, ({}, 0.0))[0]
        for address in found:
            addresses[_canonical(address)] = now
        self._known[name] = (addresses, now)

    async def _resolve(self, name: str) -> set[str] | None:
        try:
            literal = ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            return {str(literal)}
        if not self.settings.upstreams:
            return await _system_resolve(name)
        for server in self.settings.upstreams:
            answers = await asyncio.gather(*(self._query(server, name, qtype)
                                             for qtype in ("A", "AAAA")))
            if all(a is None for a in answers):
                continue  # this upstream did not answer: try the next, as the resolver does
            return set().union(*(a for a in answers if a))
        log.warning("no upstream answered for %s; not checking its address", name)
        return None

    async def _query(self, server: tuple[str, int], name: str, qtype: str) -> set[str] | None:
        loop = asyncio.get_running_loop()
        query = DNSRecord.question(name, qtype)
        query.header.id = random.randrange(65536)
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        answer: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                if not answer.done():
                    answer.set_result(data)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=server,
                                                           family=family)
        try:
            transport.sendto(query.pack())
            data = await asyncio.wait_for(answer, self.settings.timeout)
            reply = DNSRecord.parse(data)
        except (TimeoutError, OSError, ValueError, Exception):  # dnslib raises its own types
            return None
        finally:
            transport.close()
        if reply.header.id != query.header.id:
            return None
        return {str(rr.rdata) for rr in reply.rr if rr.rtype in (QTYPE.A, QTYPE.AAAA)}


async def _system_resolve(name: str) -> set[str] | None:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(name, None,
                                                             type=socket.SOCK_STREAM)
    except OSError:
        return None
    return {info[4][0] for info in infos}


def _canonical(address: str) -> str:
    try:
        addr = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return address
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return str(addr)


def safe_search_aliases() -> dict[str, frozenset[str]]:
    """name → the safe-search targets our resolver may answer instead (from the DNS's file)."""
    try:
        from gateway.dns.safe_search import SafeSearchConfig

        config = SafeSearchConfig.load()
    except Exception:  # the resolver's file is optional for the proxy
        log.warning("safe-search targets not readable; checking names against upstream only")
        return {}
    aliases: dict[str, set[str]] = {}
    for table in (config.search, config.youtube_strict, config.youtube_moderate):
        for name, target in table.items():
            aliases.setdefault(name, set()).add(target)
    return {name: frozenset(targets) for name, targets in aliases.items()}
