"""What travels along the resolver chain: a :class:`Query` in, an :class:`Answer` out.

A link either answers (returns an :class:`Answer`, stamped with what it is and why) or asks the
next link. Links are synchronous where they can be and asynchronous only where they must wait:
``resolve`` returns an :class:`Answer` or an awaitable of one. A cache hit thus runs the whole
chain as plain function calls, without a task or a coroutine, which is what keeps the hot path
near dnsmasq's speed; only a link that goes to the network hands back an awaitable.
"""

from __future__ import annotations

from collections.abc import Awaitable
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from gateway.dns.wire import Question, Scanned
    from policies.decision import Decision


class AnswerKind(StrEnum):
    """Which link answered: the counters and the tests read it."""

    UPSTREAM = "upstream"
    CACHED = "cached"
    STALE = "stale"  # RFC 8767: an expired answer, because no upstream answered
    BLOCKED = "blocked"
    REWRITTEN = "rewritten"  # safe search: a CNAME to the engine's safe variant
    CANARY = "canary"
    LOCAL = "local"  # a private or special reverse zone (RFC 6303), answered here
    REFUSED = "refused"
    SERVFAIL = "servfail"


class DnsReason(StrEnum):
    """Reasons that only the DNS resolver gives; stored in events like policies' Reason.

    Choose once, never rename: the value is what the log stores.
    """

    CLIENT_NOT_ALLOWED = "client_not_allowed"  # not in dns.allowed_clients: not an open resolver
    RATE_LIMITED = "rate_limited"
    CANARY = "canary"  # DoH and iCloud Private Relay canaries: told "no such name"
    UPSTREAM_FAILURE = "upstream_failure"
    LOCAL_ZONE = "local_zone"  # RFC 6303: a private reverse zone, never asked upstream


class Query:
    """One query on its way through the chain; links leave notes on it for later links."""

    __slots__ = ("bypass", "client", "data", "decision", "event", "question", "quiet",
                 "reason", "started", "udp")

    def __init__(self, question: Question, data: bytes, client: str, udp: bool,
                 started: float) -> None:
        self.question = question
        self.data = data  # the packet as the client sent it
        self.client = client
        self.udp = udp
        self.started = started  # time.time() on arrival: the event's time and latency
        self.decision: Decision | None = None  # the policy link's, for the event
        self.reason: str | None = None  # a DnsReason when a link answers without a decision
        self.bypass = False
        self.quiet = False  # True: no event (a rate-limited flood is reported once a minute)
        self.event: tuple | None = None  # the access event the tap made, for the replay memo


class Answer:
    """A response in base form (ID 0, lower-case question, no OPT); see :func:`wire.finalize`.

    ``names`` are the CNAME and SVCB targets it leads to: the policy link checks them.
    ``edns`` is the same response with our OPT record, when a cache entry has it ready.
    Links treat an Answer as immutable: a cache entry hands out the same one for a second.
    """

    __slots__ = ("edns", "entry", "kind", "names", "rcode", "scan", "wire")

    def __init__(self, wire: bytes, kind: AnswerKind, rcode: int = 0,
                 names: tuple[str, ...] = (), edns: bytes | None = None,
                 scan: Scanned | None = None, entry: Any = None) -> None:
        self.wire = wire
        self.kind = kind
        self.rcode = rcode
        self.names = names
        self.edns = edns
        self.scan = scan  # the upstream link's reading of the response, for the cache
        self.entry = entry  # the cache entry it came from: a replay counts as a hit on it

    def __repr__(self) -> str:
        return f"<Answer {self.kind} rcode={self.rcode} {len(self.wire)} bytes>"


Result = Answer | Awaitable[Answer]


class Resolver(Protocol):
    """One link of the chain (Blocky's resolver): answer, or ask ``next``."""

    def resolve(self, query: Query) -> Result:
        ...


class UpstreamFailure(Exception):
    """No upstream gave a usable answer in time."""
