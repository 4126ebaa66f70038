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
