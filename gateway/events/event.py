"""One access event: who asked for what, what the gateway did, and why."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Channel(StrEnum):
    DNS = "dns"
    HTTP = "http"
    TLS = "tls"  # an HTTPS connection decided on its SNI


class AccessEvent(NamedTuple):
    """Made for every query and request, so a named tuple (cheap to build, immutable).

    ``reason`` and ``action`` are the stored enum values of :mod:`policies.decision`;
    ``bypass`` marks attempts to get round the filter (DoH, VPN, IP literal, SNI mismatch).
    """

    time: float  # epoch seconds
    channel: Channel
    client: str
    host: str
    action: str
    reason: str
    category: str | None = None
    qtype: str | None = None  # DNS only: A, AAAA, HTTPS, …
    url: str | None = None  # HTTP only
    group: str | None = None
    room: str | None = None
    device: str | None = None
    session: int | None = None
    rule: str | None = None
    revision: int | None = None
    bypass: bool = False
    latency_ms: float | None = None
    # Added for detection (issue 8). Producers that build the tuple directly with
    # tuple.__new__ may leave them out: readers use ``event[17:]``, never ``event.referrer``.
    referrer: str | None = None  # HTTP only: the host of the page that asked (Referer)
    prefetch: bool = False  # HTTP only: Purpose/Sec-Purpose says prefetch, not a click
    bytes: int | None = None  # proxy: response size (Content-Length) where known


def extras_of(event: AccessEvent) -> tuple[str | None, bool]:
    """``(referrer, prefetch)`` of ``event``, also for a tuple built without them."""
    if len(event) > 17:
        return event[17], bool(event[18])
    return None, False
