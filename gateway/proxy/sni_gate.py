"""HTTPS without decryption: decide on the name in the TLS ClientHello (SNI).

- allowed and not inspected: passed through untouched (the client sees the origin's own
  certificate): mitmproxy opens the server connection and sends the ClientHello on, then
  ``relay.py`` copies the bytes between the two sockets outside mitmproxy's layers;
- blocked: the connection is refused before any byte reaches the site (no server connection is
  ever opened: the proxy runs with ``connection_strategy = lazy``); for an inspected group
  the connection is decrypted instead, so that the HTTP policy can show the block page;
- no SNI, an IP literal, or an SNI that does not belong to the address the client connects to
  (a hosts-file entry, a hard-coded address, domain fronting): a bypass attempt, blocked for
  students and logged for everyone;
- ECH (encrypted ClientHello, extension 0xfe0d): only the outer SNI is visible, and it is what
  is decided on. The outer name is the provider's public name (for example
  ``cloudflare-ech.com``), so a policy that allows it allows whatever hides behind it; schools
  that must see the inner name list the public ECH names as blocked for students (browsers
  then retry without ECH), and kalkan's resolver answers blocked names without HTTPS records,
  so no ECH keys reach the client for them.

In explicit mode the browser names the site in ``CONNECT`` first; a blocked name is refused
right there with 403, and the ClientHello's SNI must then match the CONNECT name.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from mitmproxy import http, tls

from gateway.proxy.destinations import AddressBook
from gateway.proxy.inspection import Inspection
from gateway.proxy.relay import relay_to
from policies.decision import Action, Decision, Reason
from policies.domain import fast_normalise, is_ip_literal
from policies.engine import Engine

log = logging.getLogger(__name__)

ECH_EXTENSION = 0xFE0D
NOTE = "kalkan_note"  # ClientHelloData has no metadata: the note rides on the hook's data


@dataclass(slots=True)
class TlsNote:
    """What the gate decided about one TLS connection; the event tap logs it."""

    decision: Decision
    sni: str | None
    bypass: bool = False
    inspected: bool = False
    at: float = field(default_factory=time.time)  # when decided: the event's time


def refuse(data: tls.ClientHelloData, why: str) -> None:
    """Close the client connection without ever connecting to the server.

    mitmproxy has no "kill" for a ClientHello; an ignored connection whose server connection
    carries an error is closed as soon as the relay tries to open it.
    """
    data.context.server.error = f"refused by kalkan: {why}"
    data.ignore_connection = True


def pass_through(data: tls.ClientHelloData) -> None:
    """Let the connection through untouched: mitmproxy connects to the site and sends the
    ClientHello on, then the relay copies the bytes outside its layers (``relay.py``)."""
    data.ignore_connection = True
    relay_to(data.context.client, data.context.server)


class SniGateAddon:
    def __init__(self, engine: Engine, inspection: Inspection | None = None,
                 addresses: AddressBook | None = None,
                 block_page_ips: frozenset[str] = frozenset()) -> None:
        self.engine = engine
        self.inspection = inspection or Inspection()
        self.addresses = addresses  # None: destinations are not checked
        self.block_page_ips = block_page_ips

    def http_connect(self, flow: http.HTTPFlow) -> None:
        host = flow.request.host
        if is_ip_literal(host):
            return  # no name to decide on yet: the ClientHello will tell (or be a bypass)
        decision = self.engine.decide(flow.client_conn.peername[0], host)
        if decision.blocked and not self.inspection.inspects(decision.group, host):
            flow.metadata["kalkan.decision"] = decision
            flow.response = http.Response.make(
                403, b"Blocked by the school's internet filter.\n",
                {"Content-Type": "text/plain; charset=utf-8"})

    async def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        context = data.context
        client = context.client.peername[0]
        sni = data.client_hello.sni
        address = context.server.address
        destination = str(address[0]) if address else None
        ech = any(kind == ECH_EXTENSION for kind, _ in data.client_hello.extensions)

        if not sni or is_ip_literal(sni):
            note = self._nameless(client, sni or destination)
            setattr(data, NOTE, note)
            if note.decision.blocked:
                refuse(data, note.decision.reason.value)
            else:
                pass_through(data)  # nothing to inspect against
            return

        decision = self.engine.decide(client, sni)
        if ech:
            decision = decision._replace(detail=f"encrypted ClientHello (ECH): decided on the "
                                                f"outer name {sni}")
        note = TlsNote(decision, sni)
        setattr(data, NOTE, note)
        inspect = self.inspection.inspects(decision.group, sni)
        if decision.blocked:
            if inspect:
                note.inspected = True  # decrypted: the HTTP policy shows the block page
            else:
                refuse(data, decision.reason.value)
            return

        mismatch = await self._mismatch(sni, destination, data)
        if mismatch:
            note.bypass = True
            if self._is_student(decision):
                note.decision = decision._replace(action=Action.BLOCK,
                                                  reason=Reason.BYPASS_ATTEMPT, detail=mismatch)
                refuse(data, "name does not match the address")
                return
            log.info("client %s: %s (allowed: not a student)", client, mismatch)
        if inspect:
            note.inspected = True
        else:
            pass_through(data)

    def _nameless(self, client: str, host: str | None) -> TlsNote:
        """A ClientHello with no name, or an address for a name: a bypass for students."""
        decision = self.engine.decide(client, host or "")
        if self._is_student(decision) or not host:
            decision = decision._replace(
                action=Action.BLOCK, reason=Reason.BYPASS_ATTEMPT,
                detail="HTTPS without a site name (SNI)" if not host else
                f"HTTPS to the address {host} without a site name (SNI)")
        return TlsNote(decision, None, bypass=True)

    async def _mismatch(self, sni: str, destination: str | None,
                        data: tls.ClientHelloData) -> str | None:
        """Why the SNI does not fit where the client connects, or None if it fits."""
        if destination is None:
            return None
        if not is_ip_literal(destination):  # explicit mode: the CONNECT name
            if fast_normalise(destination) != fast_normalise(sni):
                return f"the site name {sni} is not the CONNECT name {destination}"
            return None
        if destination in self.block_page_ips:
            # Our DNS sent the client to the block page (a stale answer from before a session
            # opened); the name is allowed now, so connect to it by name, not to ourselves.
            port = data.context.server.address[1]
            data.context.server.address = (sni, port)
            return None
        if self.addresses is None:
            return None
        belongs = await self.addresses.belongs(fast_normalise(sni), destination)
        if belongs is False:
            return f"the site name {sni} does not belong to the address {destination}"
        return None

    def _is_student(self, decision: Decision) -> bool:
        group = self.engine.snapshot.groups.get(decision.group or "")
        return group is None or group.is_student  # a client of no known group: fail closed
