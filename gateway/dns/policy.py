"""The policy link: ``Engine.decide`` on the qname, then on the names the answer leads to.

A blocked name gets the configured block answer and never reaches the upstream, so nothing
about it (not even an HTTPS record with its ECH keys and address hints) gets to the client.
An allowed name is resolved by the links below; if the answer leads through a CNAME (or an
SVCB/HTTPS target) into a name that a list blocks, the whole answer is blocked, as Blocky does:
otherwise ``cdn.example`` CNAME ``blocked.example`` would be a way round every list.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal

from gateway.config import DnsConfig, ProxyConfig
from gateway.dns.counters import DnsCounters
from gateway.dns.query import Answer, AnswerKind, Query, Resolver, Result
from gateway.dns.wire import QType, Question, Rcode, make_response, record
from policies.decision import Action, Decision, Reason
from policies.engine import Engine

log = logging.getLogger(__name__)

# Queries for these categories are attempts to get round the filter (issue 6).
BYPASS_CATEGORIES = frozenset({"doh", "proxy_vpn"})

# A name the answer leads to blocks the answer only when a list says so. A block for
# "education only" or "not on the focus list" does not count: nearly every site sits behind
# a CDN whose name is on no education list.
LIST_REASONS = frozenset({Reason.MANDATORY_CATEGORY, Reason.CATEGORY, Reason.SITE_LIST})

_GROUP_REASONS = LIST_REASONS | {Reason.GROUP_DEFAULT, Reason.INVALID_HOST}

_BLOCK = Action.BLOCK
_MAX_REMEMBERED = 100_000  # decisions kept within one second (memory bound under a flood)

BLOCK_TTL = 10  # short: a block often ends soon (a teacher opens a session, the council allows)


@dataclass(frozen=True, slots=True)
class BlockConfig:
    """What a blocked name resolves to (``dns.block_answer``).

    ``blockpage``: A/AAAA of the block page (``proxy.block_page_address``, else the address
    the resolver listens on); a family with no address gets an empty answer so that the
    browser uses the other one. ``null``: 0.0.0.0 and ::. ``nxdomain``: no such name. Other
    types (HTTPS, MX, TXT …) get an empty answer, or NXDOMAIN in ``nxdomain`` mode.
    """

    answer: Literal["blockpage", "nxdomain", "null"] = "blockpage"
    address_v4: ipaddress.IPv4Address | None = None
    address_v6: ipaddress.IPv6Address | None = None
    ttl: int = BLOCK_TTL

    @classmethod
    def from_config(cls, dns: DnsConfig, proxy: ProxyConfig,
                    listen: list[tuple[str, int]] | None = None) -> BlockConfig:
        if dns.block_answer != "blockpage":
            return cls(dns.block_answer)
        page = proxy.block_page_ip
        if page is not None:
            return cls("blockpage", page if page.version == 4 else None,
                       page if page.version == 6 else None)
        v4 = v6 = None
        for host, _port in listen if listen is not None else dns.listen_addresses:
            addr = ipaddress.ip_address(host)
            if addr.is_unspecified:
                continue  # 0.0.0.0 is no address to send a browser to
            if addr.version == 4 and v4 is None:
                v4 = addr
            elif addr.version == 6 and v6 is None:
                v6 = addr
        if v4 is None and v6 is None:
            log.warning("dns.block_answer is blockpage, but proxy.block_page_address is not set "
                        "and the resolver listens on no specific address: answering 0.0.0.0")
            return cls("null")
        return cls("blockpage", v4, v6)

    def describe(self) -> str:
        if self.answer == "blockpage":
            return f"blocked names answer the block page at {self.address_v4 or '-'} / " \
                   f"{self.address_v6 or '-'}"
        return f"blocked names answer {self.answer}"


class PolicyResolver:
    """Decides every query; blocks, or lets it through and checks where the answer leads."""

    def __init__(self, config: BlockConfig, engine: Engine, counters: DnsCounters,
                 next_link: Resolver) -> None:
        self.config = config
        self.engine = engine
        self.counters = counters
        self.next = next_link
        self._records = _block_records(config)
        self._second = -1
        self._snapshot: object = None
        self._decisions: dict[str, Decision] = {}
        self._memo_snapshot: object = None
        self._memo: dict[tuple[str | None, str], Decision | None] = {}

    def resolve(self, query: Query) -> Result:
        # A browser asks A, AAAA and HTTPS for a name at once, and a page asks the same names
        # again and again: the decision for (client, qname) is kept for the rest of the
        # second, and forgotten at once when the snapshot changes (a new policy, a session).
        second = int(query.started)
        snapshot = self.engine.snapshot
        if second != self._second or snapshot is not self._snapshot:
            self._second, self._snapshot, self._decisions = second, snapshot, {}
        key = query.client + " " + query.question.qname  # a qname never holds a raw space
        decision = self._decisions.get(key)
        if decision is None:
            decision = self.engine.decide(query.client, query.question.qname)
            if len(self._decisions) < _MAX_REMEMBERED:
                self._decisions[key] = decision
        query.decision = decision
        if decision.category in BYPASS_CATEGORIES:
            query.bypass = True
        if decision.action is _BLOCK:
            return self.block(query.question)
        result = self.next.resolve(query)
        if type(result) is Answer:
            return self._check(query, result) if result.names else result
        return self._check_later(query, result)

    def block(self, question: Question) -> Answer:
        self.counters.blocked += 1
        rcode, records, count = self._records.get(question.qtype, self._records[0])
        return Answer(make_response(question, rcode, records, count), AnswerKind.BLOCKED, rcode)

    async def _check_later(self, query: Query, pending: Awaitable[Answer]) -> Answer:
        answer = await pending
        return self._check(query, answer) if answer.names else answer

    def _check(self, query: Query, answer: Answer) -> Answer:
        if answer.kind is AnswerKind.REWRITTEN:
            return answer  # our own safe-search target: not the client's choice
        for name in answer.names:
            decision = self._decide_target(query, name)
            if decision is not None:
                query.decision = decision._replace(
                    host=query.question.qname,
                    detail=f"the answer leads to {name}, which is blocked")
                if decision.category in BYPASS_CATEGORIES:
                    query.bypass = True
                return self.block(query.question)
        return answer

    def _decide_target(self, query: Query, name: str) -> Decision | None:
        """The list decision that blocks ``name`` for this client's group, else None.

        Memoised per snapshot and group: CDN names repeat in every answer of a popular site.
        """
        snapshot = self.engine.snapshot
        if snapshot is not self._memo_snapshot:
            self._memo_snapshot = snapshot
            self._memo = {}
        first = query.decision
        key = (first.group if first else None, name)
        if key in self._memo:
            return self._memo[key]
        decision = self.engine.decide(query.client, name)
        found = decision if decision.blocked and decision.reason in LIST_REASONS else None
        # Only a decision made by the lists (or the group's mode) depends on nothing but the
        # group and the name; one made by a session or the schedule is this client's now.
        if decision.reason in _GROUP_REASONS:
            if len(self._memo) > 50_000:
                self._memo.clear()
            self._memo[key] = found
        return found


def _block_records(config: BlockConfig) -> dict[int, tuple[int, bytes, int]]:
    """qtype → (rcode, answer records, count); key 0 is every other qtype."""
    ttl = config.ttl
    if config.answer == "nxdomain":
        return {0: (Rcode.NXDOMAIN, b"", 0)}
    if config.answer == "null":
        v4: ipaddress.IPv4Address | None = ipaddress.IPv4Address("0.0.0.0")
        v6: ipaddress.IPv6Address | None = ipaddress.IPv6Address("::")
    else:
        v4, v6 = config.address_v4, config.address_v6
    table: dict[int, tuple[int, bytes, int]] = {0: (Rcode.NOERROR, b"", 0)}
    if v4 is not None:
        table[QType.A] = (Rcode.NOERROR, record(QType.A, ttl, v4.packed), 1)
    if v6 is not None:
        table[QType.AAAA] = (Rcode.NOERROR, record(QType.AAAA, ttl, v6.packed), 1)
    return table
