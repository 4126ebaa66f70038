"""The DNS server's sockets: UDP and TCP, IPv4 and IPv6, shared across workers.

A packet is read (:func:`gateway.dns.wire.read_question`, dnslib only for the unusual), sent
down the chain, and the answer written back. A packet that cannot be read gets FORMERR, or is
dropped when it has no whole header or is itself a response; nothing a client sends can raise
out of the event loop. With ``reuse_port`` several worker processes bind the same address
(SO_REUSEPORT) and the kernel spreads the clients over them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable

from gateway.dns.counters import DnsCounters
from gateway.dns.query import Answer, Query, Resolver
from gateway.dns.replay import ReplayMemo
from gateway.dns.wire import (
    OPCODE_MASK,
    QR,
    FormError,
    Question,
    Rcode,
    finalize,
    make_error,
    make_response,
    question_from_dnslib,
    read_question,
)

log = logging.getLogger(__name__)

TCP_IDLE = 10.0  # RFC 7766 suggests seconds, not minutes, for an idle client connection
TCP_MAX_CONNECTIONS = 512
TCP_MAX_PENDING = 64  # per connection: reading pauses beyond it
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024  # absorbs a burst while the loop is busy
_NOT_SERVED_QTYPES = frozenset({251, 252})  # IXFR, AXFR: zone transfers are not ours to give
_BADVERS = 16
_QR_OR_OPCODE = QR | OPCODE_MASK


class _Handler:
    """Reads a packet, runs the chain, writes the answer: shared by UDP and TCP."""

    def __init__(self, chain: Resolver, counters: DnsCounters,
                 replay: ReplayMemo | None = None) -> None:
        self.chain = chain
        self.counters = counters
        self.replay = replay
        self.tasks: set[asyncio.Task] = set()
        self._errors_logged = 0

    def handle(self, data: bytes, client: str, udp: bool) -> bytes | bytearray | Awaitable | None:
        """The response, or an awaitable of it, or None to stay silent."""
        replay = self.replay if udp else None
        if replay is not None:
            response = replay.answer(data, client)
            if response is not None:
                return response
        self.counters.queries += 1
        question = read_question(data)
        if question is None:
            try:
                question = question_from_dnslib(data)
            except FormError:
                self.counters.formerr += 1
                return make_error(data, Rcode.FORMERR)
        flags = question.flags
        if flags & _QR_OR_OPCODE:
            if flags & QR:
                return None  # a response sent to us: answering could start a loop
            return make_error(data, Rcode.NOTIMP)
        if question.edns_version or question.qclass != 1 or question.qtype in _NOT_SERVED_QTYPES:
            return self._unusual(question, data, udp)
        query = Query(question, data, client, udp, time.time())
        try:
            answer = self.chain.resolve(query)
        except Exception:
            self._log_error()
            return self._servfail(question, data, udp)
        if type(answer) is Answer:
            response = finalize(question, data, answer.wire, answer.edns, udp)
            if replay is not None:
                replay.remember(data, client, response, answer, query.event)
            return response
        return self._finish(question, data, udp, answer)

    async def _finish(self, question: Question, data: bytes, udp: bool,
                      pending: Awaitable[Answer]) -> bytes | bytearray:
        try:
            answer = await pending
        except Exception:
            self._log_error()
            return self._servfail(question, data, udp)
        return finalize(question, data, answer.wire, answer.edns, udp)

    def _unusual(self, question: Question, data: bytes, udp: bool) -> bytes | bytearray:
        if question.edns_version:
            # RFC 6891 section 6.1.3: BADVERS is 16, its upper 8 bits go in the OPT record.
            base = make_response(question, 0)
            wire = base[:10] + b"\x00\x01" + base[12:] + b"\x00\x00\x29\x04\xd0" + bytes(
                ((_BADVERS >> 4), 0, 0, 0, 0, 0))
            out = bytearray(wire)
            out[0:2] = data[0:2]
            return out
        # Other classes (CHAOS "version.bind") and zone transfers: not served here.
        return finalize(question, data, make_response(question, Rcode.REFUSED), None, udp)

    def _servfail(self, question: Question, data: bytes, udp: bool) -> bytearray:
        self.counters.servfail += 1
        return finalize(question, data, make_response(question, Rcode.SERVFAIL), None, udp)

    def _log_error(self) -> None:
        # A bug must not flood the log at the packet rate: the first ten, then every 1000th.
        self._errors_logged += 1
        if self._errors_logged <= 10 or self._errors_logged % 1000 == 0:
            log.exception("error while answering a query (%d so far)", self._errors_logged)

    def spawn(self, coro: Awaitable) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


class UdpServerProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: _Handler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            response = self.handler.handle(data, addr[0], True)
        except Exception:  # the last guard: the loop must keep running
            self.handler._log_error()
            return
        if type(response) is bytearray:
            self.transport.sendto(response, addr)  # type: ignore[union-attr]
        elif response is None:
            return
        elif isinstance(response, bytes):
            self.transport.sendto(response, addr)  # type: ignore[union-attr]
        else:
            self.handler.spawn(self._send_later(response, addr))

    async def _send_later(self, pending: Awaitable, addr: tuple) -> None:
        response = await pending
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP from a client that went away: nothing to do for a UDP server


class TcpServerProtocol(asyncio.Protocol):
    """DNS over TCP (RFC 7766): two-byte length, pipelined queries, answers in any order."""

    connections = 0

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.client = ""
        self.pending = 0
        self.paused = False
        self.idle: asyncio.TimerHandle | None = None
        self.last_active = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if TcpServerProtocol.connections >= TCP_MAX_CONNECTIONS:
            transport.close()
            return
        TcpServerProtocol.connections += 1
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self._touch()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client:
            TcpServerProtocol.connections -= 1
            self.client = ""
        if self.idle is not None:
            self.idle.cancel()

    def _touch(self) -> None:
        self.last_active = time.monotonic()
        if self.idle is None:
            loop = asyncio.get_running_loop()
            self.idle = loop.call_later(TCP_IDLE, self._check_idle)

    def _check_idle(self) -> None:
        self.idle = None
        if self.transport is None or self.transport.is_closing():
            return
        quiet = time.monotonic() - self.last_active
        if quiet >= TCP_IDLE and not self.pending:
            self.transport.close()
            return
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(max(0.5, TCP_IDLE - quiet), self._check_idle)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._touch()
        while len(self.buffer) >= 2:
            length = self.buffer[0] << 8 | self.buffer[1]
            if length == 0:
                self.transport.close()  # type: ignore[union-attr]
                return
            if len(self.buffer) < 2 + length:
                break
            message = bytes(self.buffer[2:2 + length])
            del self.buffer[:2 + length]
            self._answer(message)

    def _answer(self, message: bytes) -> None:
        try:
            response = self.handler.handle(message, self.client, False)
        except Exception:
            self.handler._log_error()
            return
        if response is None:
            return
        if isinstance(response, (bytes, bytearray)):
            self._write(response)
            return
        self.pending += 1
        if self.pending >= TCP_MAX_PENDING and not self.paused:
            self.paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        self.handler.spawn(self._write_later(response))

    async def _write_later(self, pending: Awaitable) -> None:
        try:
            self._write(await pending)
        finally:
            self.pending -= 1
            if self.paused and self.pending < TCP_MAX_PENDING // 2:
                self.paused = False
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.resume_reading()

    def _write(self, response: bytes | bytearray) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(len(response).to_bytes(2, "big") + response)
            self._touch()


def _socket(host: str, port: int, kind: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            # v6 only: "[::]:53" and "0.0.0.0:53" may then both be configured.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            with contextlib.suppress(OSError):  # a smaller buffer still works
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _socket_pair(host: str, port: int, reuse_port: bool) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to the same address. Port 0 (tests) takes a free UDP port and
    tries again when that number is taken for TCP."""
    for _ in range(20 if port == 0 else 1):
        udp = _socket(host, port, socket.SOCK_DGRAM, reuse_port)
        try:
            return udp, _socket(host, udp.getsockname()[1], socket.SOCK_STREAM, reuse_port)
        except OSError:
            udp.close()
            if port != 0:
                raise
    raise OSError(f"no port on {host} is free for both UDP and TCP")


class DnsServer:
    """Listens on every address of ``listen`` over UDP and TCP and answers from ``chain``."""

    def __init__(self, chain: Resolver, counters: DnsCounters,
                 listen: list[tuple[str, int]], *, reuse_port: bool = False,
                 replay: ReplayMemo | None = None) -> None:
        self.handler = _Handler(chain, counters, replay)
        self.counters = counters
        self.listen = listen
        self.reuse_port = reuse_port
        self.bound: list[tuple[str, int]] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.base_events.Server] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for host, port in self.listen:
            udp, tcp = _socket_pair(host, port, self.reuse_port)
            port = udp.getsockname()[1]
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda: UdpServerProtocol(self.handler), sock=udp)
            self._transports.append(transport)
            tcp.listen(128)
            server = await loop.create_server(lambda: TcpServerProtocol(self.handler),
                                              sock=tcp)
            self._servers.append(server)
            self.bound.append((host, port))
            log.info("dns: listening on %s port %d (UDP and TCP)", host, port)

    async def stop(self) -> None:
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for task in list(self.handler.tasks):
            task.cancel()
        for server in self._servers:
            await server.wait_closed()
        self._transports.clear()
        self._servers.clear()
