"""The upstream link: the only one that talks to the internet.

Several upstream resolvers are tried fastest first (by smoothed round-trip time); one that
fails three times in a row is put last and probed every couple of seconds until it answers
again. A query goes over UDP with our own OPT record (1232 bytes, RFC 6891; DO as the client
asked), and again over TCP when the answer comes back truncated. A ``tls://`` upstream is
asked over DNS-over-TLS (RFC 7858) on one kept-open, pipelined connection, for schools whose
ISP tampers with plain DNS. A ``tls://`` upstream given by name is looked up once, at start,
through the plain upstreams (or, when there are none, the system's resolver, at start only):
answering a query never waits for a name lookup, and never depends on the system resolver,
which on the gateway is often kalkan itself.

Every exchange ends within ``deadline`` (1.8 s): if the first upstream has not answered within
a few of its round-trip times the next one is asked as well (the first may still win), and
when time is up the caching link answers stale or SERVFAIL. The client never waits longer
than two seconds, and never forever.

Responses are matched by ID *and* question, from a few sockets with random source ports, so
that a stray or forged packet cannot answer a query.
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import logging
import random
import secrets
import socket
import ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

from dnslib import DNSRecord

from gateway.config import DnsConfig, Upstream
from gateway.dns.counters import DnsCounters
from gateway.dns.query import Answer, AnswerKind, Query, UpstreamFailure
from gateway.dns.wire import (
    CD,
    QType,
    Rcode,
    Scanned,
    encode_name,
    make_query,
    same_question,
    scan_response,
)

log = logging.getLogger(__name__)

DEADLINE = 1.8  # RFC 8767's "client response timer": answer (stale or SERVFAIL) before 2 s
UDP_SOCKETS = 4  # per upstream: random source ports, fewer sockets than queries
IDLE_CLOSE = 10.0  # seconds a TCP/TLS connection to an upstream stays open unused
FAILURES_TO_DOWN = 3
HEALTH_INTERVAL = 2.0
# Upper bounds (seconds) of the upstream latency histogram that /metrics exposes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
_RETRY_RCODES = frozenset({Rcode.SERVFAIL, Rcode.REFUSED, Rcode.NOTIMP, Rcode.FORMERR})
_PROBE = encode_name("") + bytes((0, QType.NS, 0, 1))  # ". IN NS": every resolver answers it


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    servers: tuple[Upstream, ...]
    deadline: float = DEADLINE
    health_interval: float = HEALTH_INTERVAL
    # None: the system's trusted CAs. Tests pass a context that trusts their own CA.
    tls_context: ssl.SSLContext | None = field(default=None, compare=False)

    @classmethod
    def from_dns_config(cls, dns: DnsConfig, *,
                        tls_context: ssl.SSLContext | None = None) -> UpstreamConfig:
        return cls(tuple(dns.upstream_servers), tls_context=tls_context)

    def describe(self) -> str:
        names = ", ".join(_show(u) for u in self.servers)
        return f"upstreams {names}; every answer within {self.deadline:g} s"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _show(u: Upstream) -> str:
    host = f"[{u.host}]" if ":" in u.host else u.host
    text = f"{host}:{u.port}"
    return f"tls://{text}#{u.server_name}" if u.tls else text


class UpstreamError(Exception):
    """One upstream did not give a usable answer to one query."""


# --- transports ------------------------------------------------------------------------------

class _UdpSocket(asyncio.DatagramProtocol):
    """One connected UDP socket to an upstream, with the queries waiting on it."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[asyncio.Future[bytes], bytes]] = {}
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if len(data) < 12:
            return
        waiting = self.pending.get(data[0] << 8 | data[1])
        if waiting is None:
            return
        future, question = waiting
        if not same_question(data, question):
            return  # right ID, wrong question: not the answer to this query
        if not future.done():
            future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like: every query on this socket went to the same
        # upstream, so every one of them has failed.
        self._fail(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionError("socket closed"))

    def _fail(self, exc: Exception) -> None:
        for future, _question in list(self.pending.values()):
            if not future.done():
                future.set_exception(UpstreamError(f"UDP: {exc}"))


class UdpChannel:
    """Queries to one upstream over a small pool of connected UDP sockets."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self._sockets: list[_UdpSocket | None] = [None] * UDP_SOCKETS
        self._opening: dict[int, asyncio.Future[_UdpSocket]] = {}

    async def exchange(self, question: bytes, *, do: bool, cd: bool) -> bytes:
        sock = await self._socket(random.randrange(UDP_SOCKETS))
        qid = secrets.randbits(16)
        while qid in sock.pending:
            qid = secrets.randbits(16)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        sock.pending[qid] = (future, question)
        try:
            assert sock.transport is not None
            sock.transport.sendto(make_query(question, qid, do=do, cd=cd))
            return await future
        finally:
            sock.pending.pop(qid, None)

    async def _socket(self, slot: int) -> _UdpSocket:
        sock = self._sockets[slot]
        if sock is not None and not sock.closed:
            return sock
        opening = self._opening.get(slot)
        if opening is not None:
            return await asyncio.shield(opening)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_UdpSocket] = loop.create_future()
        self._opening[slot] = future
        try:
            _transport, sock = await loop.create_datagram_endpoint(
                _UdpSocket, remote_addr=self.address)
            self._sockets[slot] = sock
            future.set_result(sock)
            return sock
        except BaseException as exc:
            future.set_exception(UpstreamError(f"UDP socket: {exc}"))
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._opening[slot]

    def close(self) -> None:
        for sock in self._sockets:
            if sock is not None and sock.transport is not None:
                sock.transport.close()
        self._sockets = [None] * UDP_SOCKETS


class _Stream:
    """One open TCP or TLS connection; answers may come in any order (RFC 7766)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, tuple[asyncio.Future[bytes], bytes]] = {}
        self.closed = False
        self.last_used = time.monotonic()
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        error: BaseException = ConnectionError("connection closed")
        try:
            while True:
                head = await self.reader.readexactly(2)
                data = await self.reader.readexactly(head[0] << 8 | head[1])
                if len(data) < 12:
                    continue
                waiting = self.pending.get(data[0] << 8 | data[1])
                if waiting is None:
                    continue
                future, question = waiting
                if same_question(data, question) and not future.done():
                    future.set_result(data)
        except asyncio.CancelledError:
            error = ConnectionError("connection closed")
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            error = exc
        finally:
            self.closed = True
            for future, _question in list(self.pending.values()):
                if not future.done():
                    future.set_exception(UpstreamError(f"stream: {error}"))
            self.writer.close()

    def close(self) -> None:
        self.closed = True
        self.task.cancel()


class StreamChannel:
    """Queries to one upstream over TCP, or TLS when ``ssl_context`` is given."""

    def __init__(self, host: str | None, port: int, ssl_context: ssl.SSLContext | None = None,
                 server_name: str | None = None) -> None:
        self.host, self.port = host, port  # host None: a name whose address is not known yet
        self.ssl_context = ssl_context
        self.server_name = server_name
        self._stream: _Stream | None = None
        self._opening: asyncio.Future[_Stream] | None = None

    async def exchange(self, question: bytes, *, do: bool, cd: bool) -> bytes:
        stream = await self._connected()
        qid = secrets.randbits(16)
        while qid in stream.pending:
            qid = secrets.randbits(16)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        stream.pending[qid] = (future, question)
        try:
            message = make_query(question, qid, do=do, cd=cd)
            stream.writer.write(len(message).to_bytes(2, "big") + message)
            return await future
        finally:
            stream.pending.pop(qid, None)
            stream.last_used = time.monotonic()

    async def _connected(self) -> _Stream:
        stream = self._stream
        if stream is not None and not stream.closed:
            return stream
        if self.host is None:
            raise UpstreamError(f"the address of {self.server_name} is not known yet")
        if self._opening is not None:
            return await asyncio.shield(self._opening)
        loop = asyncio.get_running_loop()
        self._opening = opening = loop.create_future()
        try:
            if self.ssl_context is not None:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl_context,
                    server_hostname=self.server_name or self.host)
            else:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            self._stream = _Stream(reader, writer)
            opening.set_result(self._stream)
            return self._stream
        except BaseException as exc:
            opening.set_exception(UpstreamError(f"connect: {exc}"))
            opening.exception()
            if isinstance(exc, (OSError, ssl.SSLError)):
                raise UpstreamError(f"connect to {self.host}:{self.port}: {exc}") from None
            raise
        finally:
            self._opening = None

    def close_idle(self, now: float) -> None:
        stream = self._stream
        if stream is not None and not stream.pending and now - stream.last_used > IDLE_CLOSE:
            stream.close()
            self._stream = None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None


# --- one upstream and its health --------------------------------------------------------------

class UpstreamServer:
    """One configured upstream: its channels, smoothed RTT and health."""

    def __init__(self, upstream: Upstream, tls_context: ssl.SSLContext | None) -> None:
        self.upstream = upstream
        self.name = _show(upstream)
        # A tls:// upstream given by name gets its address from find_address(), once.
        self.unresolved = upstream.tls and not _is_ip(upstream.host)
        if upstream.tls:
            context = tls_context or ssl.create_default_context()
            self.udp: UdpChannel | None = None
            self.stream = StreamChannel(None if self.unresolved else upstream.host,
                                        upstream.port, context, upstream.server_name)
        else:
            self.udp = UdpChannel(upstream.host, upstream.port)
            self.stream = StreamChannel(upstream.host, upstream.port)
        self.srtt: float | None = None
        self.failures = 0
        self.down = False
        self.answers = 0
        self.errors = 0
        self.last_used = 0.0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # the last: slower than all
        self.latency_sum = 0.0

    def attempt_timeout(self) -> float:
        """How long to wait before asking the next upstream as well."""
        if self.srtt is None:
            return 0.4
        return min(1.0, max(0.1, 4 * self.srtt + 0.05))

    def succeeded(self, rtt: float) -> None:
        self.srtt = rtt if self.srtt is None else 0.7 * self.srtt + 0.3 * rtt
        self.answers += 1
        # Once per upstream answer (a cache miss), never on a cache hit.
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, rtt)] += 1
        self.latency_sum += rtt
        self.failures = 0
        if self.down:
            log.info("upstream %s answers again (%.0f ms)", self.name, rtt * 1000)
        self.down = False

    def was_slow(self, elapsed: float) -> None:
        if self.srtt is None or elapsed > self.srtt:
            self.srtt = elapsed if self.srtt is None else 0.7 * self.srtt + 0.3 * elapsed

    def failed(self, reason: object) -> None:
        self.errors += 1
        self.failures += 1
        self.srtt = min(2.0, (self.srtt or 0.1) * 2)
        if self.failures >= FAILURES_TO_DOWN and not self.down:
            self.down = True
            log.warning("upstream %s is not answering (%s); trying the others first",
                        self.name, reason)

    async def ask(self, question: bytes, *, do: bool, cd: bool) -> bytes:
        self.last_used = time.monotonic()
        if self.udp is None:
            return await self.stream.exchange(question, do=do, cd=cd)
        data = await self.udp.exchange(question, do=do, cd=cd)
        if data[2] & 0x02:  # TC: the answer did not fit; ask again over TCP (RFC 7766)
            data = await self.stream.exchange(question, do=do, cd=cd)
        return data

    def status(self) -> dict[str, object]:
        return {"upstream": self.name, "up": not self.down,
                "srtt_ms": None if self.srtt is None else round(self.srtt * 1000, 2),
                "answers": self.answers, "errors": self.errors,
                "latency_counts": self.latency_counts, "latency_sum": round(self.latency_sum, 6)}

    def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        self.stream.close()


# --- the link ------------------------------------------------------------------------------------

class UpstreamResolver:
    """Last link: asks the upstreams and returns their answer, or raises UpstreamFailure."""

    def __init__(self, config: UpstreamConfig, counters: DnsCounters) -> None:
        self.config = config
        self.counters = counters
        self.servers = [UpstreamServer(u, config.tls_context) for u in config.servers]
        self._health: asyncio.Task | None = None
        self._lookup: asyncio.Task | None = None

    def resolve(self, query: Query) -> Awaitable[Answer]:
        return self._resolve(query)

    async def find_addresses(self) -> None:
        """Look up the tls:// upstreams given by name, until each has an address.

        Through the plain upstreams, as any other name; only when there are none, through the
        system's resolver, and only here, never while a client waits.
        """
        while True:
            waiting = [s for s in self.servers if s.unresolved]
            if not waiting:
                return
            for server in waiting:
                address = await self._address_of(server.upstream.host)
                if address is None:
                    continue
                server.stream.host = address
                server.unresolved = False
                log.info("upstream %s is at %s", server.name, address)
            if any(s.unresolved for s in self.servers):
                await asyncio.sleep(self.config.health_interval)

    async def _address_of(self, host: str) -> str | None:
        plain = [s for s in self.servers if not s.upstream.tls]
        if not plain:
            try:
                found = await asyncio.get_running_loop().getaddrinfo(
                    host, None, type=socket.SOCK_STREAM)
            except OSError as exc:
                log.error("cannot find the address of the DNS-over-TLS upstream %s (%s): "
                          "give its address with the name for the certificate, e.g. "
                          "tls://9.9.9.9#dns.quad9.net, or a plain upstream to look it up",
                          host, exc)
                return None
            return found[0][4][0] if found else None
        for qtype in (QType.A, QType.AAAA):
            question = encode_name(host) + bytes((0, qtype, 0, 1))
            try:
                scan = await self.exchange(question, do=False, servers=plain)
            except UpstreamFailure as exc:
                log.warning("cannot look up the DNS-over-TLS upstream %s yet: %s", host, exc)
                return None
            for rr in DNSRecord.parse(scan.base).rr:
                if rr.rtype == qtype:
                    return str(rr.rdata)
        log.warning("the DNS-over-TLS upstream %s has no address", host)
        return None

    async def _resolve(self, query: Query) -> Answer:
        question = query.question
        scan = await self.exchange(question.wire, do=question.do,
                                   cd=bool(question.flags & CD))
        return Answer(scan.base, AnswerKind.UPSTREAM, scan.rcode, scan.names, scan=scan)

    def ranked(self) -> list[UpstreamServer]:
        """Healthy upstreams fastest first (unmeasured ones first, to measure them), then
        those that are down."""
        return sorted(self.servers, key=lambda s: (s.down, s.srtt or 0.0))

    async def exchange(self, question: bytes, *, do: bool, cd: bool = False,
                       servers: list[UpstreamServer] | None = None) -> Scanned:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.deadline
        ranked = self.ranked() if servers is None else servers
        plan = [s for s in ranked if not s.unresolved] * 2  # each at most twice per query
        # task → (its upstream, when it started, how long it had before the next was asked)
        running: dict[asyncio.Task[Scanned], tuple[UpstreamServer, float, float]] = {}
        pending: set[asyncio.Task[Scanned]] = set()
        last_error: BaseException | None = None
        won = False
        try:
            while True:
                now = loop.time()
                if now >= deadline:
                    break
                if plan:
                    server = plan.pop(0)
                    task = loop.create_task(self._attempt(server, question, do, cd))
                    timeout = server.attempt_timeout()
                    running[task] = (server, now, timeout)
                    pending.add(task)
                    wait = min(timeout, deadline - now)
                elif pending:
                    wait = deadline - now
                else:
                    break
                done, pending = await asyncio.wait(pending, timeout=wait,
                                                   return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        won = True
                        return task.result()
                    last_error = task.exception()
        finally:
            now = loop.time()
            for task in pending:
                task.cancel()
                server, started, timeout = running[task]
                # Overtaken by another upstream is no fault; silent past its time is one.
                if not won or now - started > timeout:
                    server.failed("no answer in time")
        raise UpstreamFailure(f"no upstream answered: {last_error or 'timeout'}")

    async def _attempt(self, server: UpstreamServer, question: bytes, do: bool,
                       cd: bool) -> Scanned:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            data = await server.ask(question, do=do, cd=cd)
        except asyncio.CancelledError:
            server.was_slow(loop.time() - started)
            raise
        except (OSError, UpstreamError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            server.failed(exc)
            raise UpstreamError(f"{server.name}: {exc}") from None
        scan = scan_response(data, question)
        if scan is None:
            server.failed("malformed answer")
            raise UpstreamError(f"{server.name}: malformed answer")
        server.succeeded(loop.time() - started)
        if scan.rcode in _RETRY_RCODES:
            # The upstream is alive but could not answer this name: another one may.
            raise UpstreamError(f"{server.name}: {Rcode(scan.rcode).name}")
        return scan

    # --- health ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._health is None:
            loop = asyncio.get_running_loop()
            self._health = loop.create_task(self._check_health())
            if any(s.unresolved for s in self.servers):
                self._lookup = loop.create_task(self.find_addresses())

    async def _check_health(self) -> None:
        while True:
            await asyncio.sleep(self.config.health_interval)
            now = time.monotonic()
            for server in self.servers:
                server.stream.close_idle(now)
                # Down ones to see whether they are back; idle ones to keep their RTT honest;
                # one that just failed, so that a dead one is found out (and shown down) even
                # when the ranking no longer sends it queries.
                if server.unresolved:
                    continue  # find_addresses() is still looking it up
                if server.down or server.failures or now - server.last_used > 30.0:
                    asyncio.get_running_loop().create_task(self._probe(server))

    async def _probe(self, server: UpstreamServer) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            data = await asyncio.wait_for(server.ask(_PROBE, do=False, cd=False), 1.0)
        except (TimeoutError, OSError, UpstreamError, ssl.SSLError,
                asyncio.IncompleteReadError) as exc:
            if not server.down:
                server.failed(exc)
            return
        if scan_response(data, _PROBE) is not None:
            server.succeeded(loop.time() - started)

    def status(self) -> list[dict[str, object]]:
        return [s.status() for s in self.servers]

    def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
            self._health = None
        if self._lookup is not None:
            self._lookup.cancel()
            self._lookup = None
        for server in self.servers:
            server.close()
