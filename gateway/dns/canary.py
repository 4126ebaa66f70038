"""Canary names that switch off ways round the filter when they do not resolve.

Firefox turns off its built-in DNS-over-HTTPS when ``use-application-dns.net`` has no
address (https://support.mozilla.org/kb/canary-domain-use-application-dnsnet), and Apple
devices turn off iCloud Private Relay when ``mask.icloud.com`` and ``mask-h2.icloud.com``
give a negative answer (https://developer.apple.com/support/prepare-your-network-for-icloud-private-relay).
Both would otherwise carry a student's lookups past the school's resolver.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.dns.query import Answer, AnswerKind, DnsReason, Query, Resolver, Result
from gateway.dns.wire import Rcode, make_response

CANARY_NAMES = frozenset({"use-application-dns.net", "mask.icloud.com", "mask-h2.icloud.com"})


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    names: frozenset[str] = CANARY_NAMES

    def describe(self) -> str:
        return "NXDOMAIN for " + ", ".join(sorted(self.names))


class CanaryResolver:
    """NXDOMAIN for the canary names, for every client and group."""

    def __init__(self, config: CanaryConfig, next_link: Resolver) -> None:
        self.config = config
        self.names = config.names
        self.next = next_link

    def resolve(self, query: Query) -> Result:
        if query.question.qname not in self.names:
            return self.next.resolve(query)
        query.reason = DnsReason.CANARY
        return Answer(make_response(query.question, Rcode.NXDOMAIN), AnswerKind.CANARY,
                      Rcode.NXDOMAIN)
