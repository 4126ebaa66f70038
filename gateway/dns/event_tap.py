"""The event tap: every answer, refusals included, becomes an access event.

It is the first link, so it sees what every other link did: the decision the policy link
left on the query, the refusal of the access link, the canary's NXDOMAIN. Events go on the
bounded in-memory queue, which never blocks: when it is full the event is dropped and counted
(``kalkan status``), because a log line is worth less than a classroom's DNS answer.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from gateway.dns.query import Answer, AnswerKind, DnsReason, Query, Resolver, Result
from gateway.dns.wire import QTYPE_TEXT
from gateway.events.event import AccessEvent, Channel
from gateway.events.queue import EventQueue
from policies.decision import Action, Reason

_DNS = Channel.DNS
_ALLOW, _BLOCK = Action.ALLOW, Action.BLOCK
_new_event = tuple.__new__  # AccessEvent(...) without NamedTuple's Python-level __new__
_BLOCKED_KINDS = frozenset({AnswerKind.BLOCKED, AnswerKind.REFUSED, AnswerKind.CANARY})
_SERVFAIL, _BLOCKED, _REWRITTEN = AnswerKind.SERVFAIL, AnswerKind.BLOCKED, AnswerKind.REWRITTEN
_UPSTREAM_FAILURE, _SAFE_SEARCH = DnsReason.UPSTREAM_FAILURE, Reason.SAFE_SEARCH


class EventTapResolver:
    def __init__(self, events: EventQueue, next_link: Resolver) -> None:
        self.events = events
        self.next = next_link

    def resolve(self, query: Query) -> Result:
        result = self.next.resolve(query)
        if type(result) is Answer:
            self.record(query, result)
            return result
        return self._later(query, result)

    async def _later(self, query: Query, pending: Awaitable[Answer]) -> Answer:
        answer = await pending
        self.record(query, answer)
        return answer

    def record(self, query: Query, answer: Answer) -> None:
        if query.quiet:
            return
        now = time.time()
        question = query.question
        decision = query.decision
        latency = (now - query.started) * 1000.0
        kind = answer.kind
        if decision is None:  # answered before the policy link: refused, canary
            self.events.put(AccessEvent(
                query.started, _DNS, query.client, question.qname,
                _BLOCK if kind in _BLOCKED_KINDS else _ALLOW,
                query.reason or "none", None,
                QTYPE_TEXT.get(question.qtype) or str(question.qtype),
                bypass=query.bypass, latency_ms=latency))
            return
        if kind is _BLOCKED:
            action, reason = _BLOCK, decision.reason
        else:
            action, reason = decision.action, decision.reason
            if kind is _SERVFAIL:
                reason = _UPSTREAM_FAILURE
            elif kind is _REWRITTEN:
                reason = _SAFE_SEARCH
        query.event = event = _new_event(AccessEvent, (
            query.started, _DNS, query.client, question.qname, action, reason,
            decision.category, QTYPE_TEXT.get(question.qtype) or str(question.qtype), None,
            decision.group, decision.room, decision.device, decision.session, decision.rule,
            decision.revision, query.bypass, latency))
        self.events.put(event)
