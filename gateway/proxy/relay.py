"""Passthrough HTTPS outside mitmproxy's layers: once the SNI gate has let a connection through
untouched, the bytes are copied between the two sockets by a pair of asyncio protocols.

mitmproxy relays an ignored connection chunk by chunk through its layer stack (a read, an
event, a generator per layer, a command, a drain of every writer); that capped passthrough
well below squid (issue 7). Here each chunk is one ``data_received`` → ``write`` on the other
transport, with the kernel's flow control: when one side's write buffer fills up, reading from
the other side pauses. mitmproxy still sees the ClientHello, makes the decision through the
addons, opens the server connection and sends the ClientHello on; only then is the relay put
in (``handler.KalkanConnectionHandler``), and when it ends, mitmproxy's own readers
get their end of file, so its hooks (disconnects, the event tap) run as for any connection.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mitmproxy.connection import Client, Server

RELAY = "kalkan_relay"  # on a Client: the Server whose bytes are relayed (set by the SNI gate)
BYTES = "kalkan_bytes"  # on a Client: bytes the site sent through the relay, when it ended
WRITE_BUFFER = 1 << 20  # per transport: fewer pauses on a fast link, bounded memory per link


def relay_to(client: Client, server: Server) -> None:
    """Ask for the bytes between ``client`` and ``server`` to be relayed directly."""
    setattr(client, RELAY, server)


class _Side(asyncio.Protocol):
    """One socket of a relayed pair: what it reads goes to the other."""

    __slots__ = ("count", "eof", "peer", "relay", "transport")

    def __init__(self, relay: Relay, transport: asyncio.Transport) -> None:
        self.relay = relay
        self.transport = transport
        self.peer: _Side
        self.count = 0
        self.eof = False

    def data_received(self, data: bytes) -> None:
        self.count += len(data)
        self.peer.transport.write(data)
        self.relay.watchdog.last_activity = time.time()

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer.transport
        if not peer.is_closing() and peer.can_write_eof():
            peer.write_eof()  # a half-close travels on; the other direction goes on
        if self.peer.eof:
            self.relay.end()
        return True  # keep the transport open until both directions are done

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.end()

    # Flow control: this side's write buffer is full → stop reading what fills it.
    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self.peer.transport.resume_reading()


class Relay:
    def __init__(self, client: asyncio.StreamReader, client_transport: asyncio.Transport,
                 server: asyncio.StreamReader, server_transport: asyncio.Transport,
                 watchdog: Any, on_end: Any) -> None:
        self.readers = (client, server)
        self.watchdog = watchdog
        self.on_end = on_end
        self.client = _Side(self, client_transport)
        self.server = _Side(self, server_transport)
        self.client.peer, self.server.peer = self.server, self.client
        self.ended = False

    def start(self) -> None:
        client, server = self.readers
        # What mitmproxy's readers already hold goes on first.
        for reader, side in ((client, self.client), (server, self.server)):
            pending = bytes(reader._buffer)  # asyncio has no public "take what you hold"
            reader._buffer.clear()
            if pending:
                side.data_received(pending)
        for side in (self.client, self.server):
            side.transport.set_protocol(side)
            side.transport.set_write_buffer_limits(high=WRITE_BUFFER)
        for side in (self.client, self.server):
            side.transport.resume_reading()

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        for side in (self.client, self.server):
            if not (side.eof and side.peer.eof):
                side.transport.close()  # one side broke off: so does the other, once flushed
        self.on_end(self.server.count)
        for reader in self.readers:  # mitmproxy's loops end as at any end of file
            reader.feed_eof()
