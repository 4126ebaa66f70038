"""Access control: answer only the school's networks, and only at a sane rate.

A resolver on a router that answers anyone is an open resolver, which strangers use to
amplify attacks; so clients outside ``dns.allowed_clients`` get REFUSED. A client that floods
(a broken program, a student's script) gets REFUSED once its token bucket is empty, so one
machine cannot slow the resolver down for the whole school. The flood is logged once per client
per minute, not once per packet, so that the log itself is not flooded.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass

from gateway.config import DnsConfig, IPNetwork
from gateway.dns.counters import DnsCounters
from gateway.dns.query import Answer, AnswerKind, DnsReason, Query, Resolver, Result
from gateway.dns.wire import Rcode, make_response

log = logging.getLogger(__name__)

_MAX_CLIENTS = 65536  # buckets kept; beyond it idle clients are forgotten
_LOG_EVERY = 60.0
DEFAULT_RATE = 200.0  # queries/s per client: a PC opening a busy page asks ~100 names at once
DEFAULT_BURST = 1000.0


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """Who may ask, and how fast: ``rate`` queries per second with bursts up to ``burst``."""

    allowed: tuple[IPNetwork, ...]
    rate: float = DEFAULT_RATE
    burst: float = DEFAULT_BURST

    @classmethod
    def from_dns_config(cls, dns: DnsConfig, *, rate: float | None = None,
                        burst: float | None = None) -> AccessConfig:
        return cls(tuple(dns.allowed_networks), dns.rate_limit if rate is None else rate,
                   dns.rate_burst if burst is None else burst)

    def describe(self) -> str:
        nets = ", ".join(str(n) for n in self.allowed)
        return (f"answering {nets}; at most {self.rate:g} queries/s per client "
                f"(burst {self.burst:g})")


class AccessResolver:
    """Refuses outsiders and flooding clients; everyone else goes on down the chain."""

    def __init__(self, config: AccessConfig, counters: DnsCounters, next_link: Resolver) -> None:
        self.config = config
        self.counters = counters
        self.next = next_link
        self._rate = config.rate
        self._burst = config.burst
        # client → [tokens, last refill, last logged, 1.0 if in allowed_clients else 0.0]
        self._buckets: dict[str, list[float]] = {}

    def resolve(self, query: Query) -> Result:
        client = query.client
        now = time.monotonic()
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._new_bucket(client, now)
        tokens = bucket[0] + (now - bucket[1]) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return self._limited(query, bucket, now)
        bucket[0] = tokens - 1.0
        if not bucket[3]:
            self.counters.refused += 1
            query.reason = DnsReason.CLIENT_NOT_ALLOWED
            return Answer(make_response(query.question, Rcode.REFUSED), AnswerKind.REFUSED,
                          Rcode.REFUSED)
        return self.next.resolve(query)

    def admit(self, client: str) -> bool:
        """Take one token for a repeat answered without the chain (gateway/dns/replay.py);
        False when the bucket is empty, and the query must go the long way to its refusal."""
        bucket = self._buckets.get(client)
        if bucket is None or not bucket[3]:
            return False
        now = time.monotonic()
        tokens = bucket[0] + (now - bucket[1]) * self._rate
        if tokens > self._burst:
            tokens = self._burst
        if tokens < 1.0:
            return False
        bucket[0] = tokens - 1.0
        bucket[1] = now
        return True

    def _limited(self, query: Query, bucket: list[float], now: float) -> Answer:
        self.counters.rate_limited += 1
        query.reason = DnsReason.RATE_LIMITED
        if now - bucket[2] >= _LOG_EVERY:
            bucket[2] = now
            self.counters.rate_limited_clients += 1
            log.warning("client %s sends more than %g queries/s; refusing its queries "
                        "(reported again in a minute if it goes on)", query.client, self._rate)
        else:
            query.quiet = True  # one event per client per minute, like the log line
        return Answer(make_response(query.question, Rcode.REFUSED), AnswerKind.REFUSED,
                      Rcode.REFUSED)

    def _new_bucket(self, client: str, now: float) -> list[float]:
        if len(self._buckets) >= _MAX_CLIENTS:
            idle = [c for c, b in self._buckets.items() if now - b[1] > _LOG_EVERY]
            for c in idle or list(self._buckets):
                del self._buckets[c]
        bucket = [self._burst, now, -_LOG_EVERY, 1.0 if self._allowed(client) else 0.0]
        self._buckets[client] = bucket
        return bucket

    def _allowed(self, client: str) -> bool:
        try:
            addr = ipaddress.ip_address(client.split("%", 1)[0])
        except ValueError:
            return False
        if addr.version == 6 and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.config.allowed)
