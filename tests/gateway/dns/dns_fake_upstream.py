"""A fake upstream DNS server for the tests and the benchmark: loopback only, answers from a zone.

It runs in its own thread with its own event loop, on UDP and TCP, and can be told to be slow
(``delay``), dead (``mode = "drop"``: no answer at all; :meth:`close` : nothing listening, so
the kernel answers with ICMP port unreachable), failing (``"servfail"``, ``"refused"``), or to
truncate its UDP answers (``truncate``), so that the resolver's every path can be driven.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterable

from dnslib import EDNS0, QTYPE, RCODE, RR, DNSRecord

SOA_LINE = "{owner} 300 IN SOA ns.{zone} hostmaster.{zone} 1 3600 600 86400 {minimum}"


class FakeUpstream:
    def __init__(self, zone: str | Iterable[str] = "", *, host: str = "127.0.0.77",
                 port: int = 0, negative_ttl: int = 60, wildcard_a: str | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        """``zone`` is zone-file text (``name TTL IN TYPE data`` lines, absolute names).

        ``wildcard_a``: answer this address for A queries of names not in the zone (the
        benchmark's "allowed" names), instead of NXDOMAIN. ``tls``: serve DNS-over-TLS on the
        TCP port with this server context.
        """
        text = zone if isinstance(zone, str) else "\n".join(zone)
        self.records: dict[str, list[RR]] = {}
        for rr in RR.fromZone(text) if text.strip() else []:
            self.records.setdefault(str(rr.rname).lower().rstrip("."), []).append(rr)
        self.host = host
        self.port = port
        self.negative_ttl = negative_ttl
        self.wildcard_a = wildcard_a
        self.tls = tls
        self.negative_soa = True  # False: negative answers without an SOA (not cacheable)
        self.delay = 0.0
        self.mode = "answer"  # "drop", "servfail", "refused"
        self.truncate: set[str] = set()
        self.queries: list[tuple[str, str, str]] = []  # (qname, qtype, "udp"/"tcp")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.base_events.Server | None = None

    # --- zone ----------------------------------------------------------------------------

    def add(self, *lines: str) -> None:
        for rr in RR.fromZone("\n".join(lines)):
            self.records.setdefault(str(rr.rname).lower().rstrip("."), []).append(rr)

    def answer(self, request: DNSRecord, transport: str) -> DNSRecord | None:
        question = request.q
        qname = str(question.qname).lower().rstrip(".")
        self.queries.append((qname, QTYPE.get(question.qtype), transport))
        if self.mode == "drop":
            return None
        reply = request.reply()
        opt = [rr for rr in request.ar if rr.rtype == QTYPE.OPT]
        dnssec_ok = bool(opt and opt[0].ttl & 0x8000)
        if opt:
            reply.add_ar(EDNS0(udp_len=1232, flags="do" if dnssec_ok else ""))
        if self.mode in ("servfail", "refused"):
            reply.header.rcode = getattr(RCODE, self.mode.upper())
            return reply
        if transport == "udp" and qname in self.truncate:
            reply.header.tc = 1
            return reply
        name, known = qname, False
        for _ in range(8):  # follow CNAMEs inside the zone, as a recursive resolver does
            records = self.records.get(name)
            if not records:
                break
            known = True
            matching = [rr for rr in records if rr.rtype == question.qtype]
            cnames = [rr for rr in records if rr.rtype == QTYPE.CNAME]
            if matching:
                for rr in matching:
                    reply.add_answer(rr)
                # As a validating resolver does: signatures only for a client that sent DO,
                # and AD on a signed answer.
                signatures = [rr for rr in records if rr.rtype == QTYPE.RRSIG
                              and rr.rdata.covered == question.qtype]
                if dnssec_ok and signatures:
                    reply.add_answer(*signatures)
                    reply.header.ad = 1
                break
            if not cnames:
                break
            reply.add_answer(cnames[0])
            name = str(cnames[0].rdata.label).lower().rstrip(".")
        if not reply.rr and not known and self.wildcard_a and question.qtype == QTYPE.A:
            reply.add_answer(*RR.fromZone(f"{qname}. 3600 IN A {self.wildcard_a}"))
            return reply
        if not reply.rr:
            if not known:
                reply.header.rcode = RCODE.NXDOMAIN
            if not self.negative_soa:
                return reply
            zone = ".".join(qname.split(".")[-2:]) + "." if qname else ""
            reply.add_auth(*RR.fromZone(SOA_LINE.format(owner=zone or ".", zone=zone,
                                                        minimum=self.negative_ttl)))
        return reply

    # --- serving -------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._open())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(20):  # port 0: a free UDP port whose number is free for TCP too
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, self.port))
            port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port,
                                                       ssl=self.tls)
            except OSError:
                self._udp.close()
                if self.port:
                    raise
                continue
            self.port = port
            return
        raise OSError("no free port")

    async def _serve_tcp(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                data = await reader.readexactly(int.from_bytes(head, "big"))
                asyncio.get_running_loop().create_task(self._reply_tcp(data, writer))
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass

    async def _reply_tcp(self, data: bytes, writer: asyncio.StreamWriter) -> None:
        reply = self.answer(DNSRecord.parse(data), "tcp")
        if reply is None:
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        wire = reply.pack()
        if not writer.is_closing():
            writer.write(len(wire).to_bytes(2, "big") + wire)

    def close(self) -> None:
        """Stop listening: from now on the kernel refuses (ICMP port unreachable, TCP RST)."""
        if self._loop is None or not self._loop.is_running():
            return

        async def shut() -> None:
            if self._udp is not None:
                self._udp.close()
            if self._tcp is not None:
                self._tcp.close()
            await asyncio.sleep(0)  # let the transports really close their sockets

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)

    def stop(self) -> None:
        self.close()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            request = DNSRecord.parse(data)
        except Exception:
            return
        reply = self.upstream.answer(request, "udp")
        if reply is None:
            return
        wire = reply.pack()
        if self.upstream.delay:
            asyncio.get_running_loop().call_later(self.upstream.delay, self._send, wire, addr)
        else:
            self._send(wire, addr)

    def _send(self, wire: bytes, addr: tuple) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)
