"""Every decision of the proxy becomes an :class:`~gateway.events.event.AccessEvent` on the same
queue as the resolver's: channel ``tls`` for an HTTPS connection decided on its name, ``http``
for a request decided on its URL (plain HTTP, or inside a decrypted connection).

A connection passed through untouched is logged when it ends, with the bytes the site sent
(``bytes``) and the time of the decision; a refused one at once.

Last in the addon list, so that it sees the final word on every flow (a download refused after
the policy allowed the URL is logged as the refusal). One event per flow, when the flow ends;
the queue never blocks, so logging never slows a page down.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from mitmproxy import connection, http, tls

from gateway.events.event import AccessEvent, Channel
from gateway.events.queue import EventQueue
from gateway.proxy.http_policy import BYPASS, DECISION, URL
from gateway.proxy.relay import BYTES, RELAY
from gateway.proxy.sni_gate import NOTE, TlsNote
from policies.decision import Decision, Reason


def event_of(decision: Decision, channel: Channel, *, url: str | None = None,
             bypass: bool = False, latency_ms: float | None = None,
             size: int | None = None, at: float | None = None,
             referrer: str | None = None, prefetch: bool = False) -> AccessEvent:
    return AccessEvent(
        time=time.time() if at is None else at, channel=channel, client=decision.client,
        host=decision.host, action=decision.action.value, reason=decision.reason.value,
        category=decision.category, url=url, group=decision.group, room=decision.room,
        device=decision.device, session=decision.session, rule=decision.rule,
        revision=decision.revision,
        bypass=bypass or decision.reason is Reason.BYPASS_ATTEMPT,
        latency_ms=latency_ms, bytes=size, referrer=referrer, prefetch=prefetch)


PENDING = "kalkan_pending_event"  # on a Client: the note of a passthrough still open


class EventTapAddon:
    def __init__(self, events: EventQueue) -> None:
        self.events = events

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        note: TlsNote | None = getattr(data, NOTE, None)
        if note is None:
            return
        client = data.context.client
        if getattr(client, RELAY, None) is not None and not data.context.server.error:
            # Passed through: logged when the connection ends, with what the site sent.
            setattr(client, PENDING, note)
            return
        self.events.put(event_of(note.decision, Channel.TLS, bypass=note.bypass, at=note.at))

    def client_disconnected(self, client: connection.Client) -> None:
        note: TlsNote | None = getattr(client, PENDING, None)
        if note is not None:
            setattr(client, PENDING, None)
            self.events.put(event_of(note.decision, Channel.TLS, bypass=note.bypass,
                                     at=note.at, size=getattr(client, BYTES, None)))

    def http_connect(self, flow: http.HTTPFlow) -> None:
        decision = flow.metadata.get(DECISION)
        if decision is not None and flow.response is not None:  # refused at CONNECT
            self.events.put(event_of(decision, Channel.TLS))

    def response(self, flow: http.HTTPFlow) -> None:
        self._log(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._log(flow)

    def _log(self, flow: http.HTTPFlow) -> None:
        decision = flow.metadata.get(DECISION)
        if decision is None or flow.request.method == "CONNECT":
            return  # our own pages, and CONNECTs (logged as TLS above)
        size = None
        latency = None
        response = flow.response
        if response is not None:
            length = response.headers.get("content-length")
            size = int(length) if length and length.isdigit() else None
            if not decision.blocked and response.timestamp_start and flow.request.timestamp_end:
                latency = (response.timestamp_start - flow.request.timestamp_end) * 1000
        url = flow.metadata.get(URL) or flow.request.pretty_url
        headers = flow.request.headers
        # For detection (issue 8): a page's own subrequests and the browser's prefetching are
        # not a student's clicks.
        referer = headers.get("referer")
        referrer = urlsplit(referer).hostname if referer else None
        purpose = (headers.get("sec-purpose") or headers.get("purpose") or "").lower()
        self.events.put(event_of(decision, Channel.HTTP, url=url,
                                 bypass=bool(flow.metadata.get(BYPASS)), latency_ms=latency,
                                 size=size, at=flow.request.timestamp_start,
                                 referrer=referrer, prefetch="prefetch" in purpose))
