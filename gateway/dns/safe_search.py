"""Safe search: search engines and YouTube answered with their safe variants.

The targets are data, in ``safe_search.txt`` beside this module (one file for the DNS resolver
and the proxy). For a group with ``safe_search`` the search engines' names are answered as a
CNAME to the engine's safe host plus that host's own records; YouTube is its own switch
(``youtube: strict`` or ``moderate``), because teachers often need YouTube in a lesson.

The target is resolved through the next link (the cache, then the upstreams), so it is cached
like any upstream answer. The rewritten answer itself is kept in a small cache of its own,
keyed by question and target: it is the same for every client whose group has the switch on,
but it must never be served from the shared cache to a group that has it off.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from dnslib import CNAME, QTYPE, RR, DNSHeader, DNSQuestion, DNSRecord

from gateway.dns.cache import Entry, cache_key
from gateway.dns.counters import DnsCounters
from gateway.dns.query import Answer, AnswerKind, Query, Resolver, Result
from gateway.dns.wire import (
    QR,
    RA,
    RD,
    QType,
    Question,
    Rcode,
    encode_name,
    make_response,
    record,
    scan_response,
)
from policies.decision import Reason
from policies.engine import Engine

TARGETS_FILE = "safe_search.txt"
REWRITE_TTL = 300  # the CNAME we add; the target's own records keep their TTLs
_MEMO_SIZE = 4096


class SafeSearchFileError(ValueError):
    """safe_search.txt has a line that is not ``name target`` or an unknown section."""


@dataclass(frozen=True, slots=True)
class SafeSearchConfig:
    """name → target, per switch: ``search`` and YouTube ``strict``/``moderate``."""

    search: Mapping[str, str]
    youtube_strict: Mapping[str, str]
    youtube_moderate: Mapping[str, str]

    @classmethod
    def load(cls, path: str | Path | None = None) -> SafeSearchConfig:
        if path is None:
            text = resources.files("gateway.dns").joinpath(TARGETS_FILE).read_text("utf-8")
            return parse_targets(text, TARGETS_FILE)
        return parse_targets(Path(path).read_text("utf-8"), str(path))

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.search) | frozenset(self.youtube_strict) | frozenset(
            self.youtube_moderate)

    def describe(self) -> str:
        return (f"safe search for {len(self.search)} search-engine names, YouTube restricted "
                f"mode for {len(self.youtube_strict)} names")


def parse_targets(text: str, file: str = TARGETS_FILE) -> SafeSearchConfig:
    """Read ``[section]`` lines and ``name target`` rules; ``#`` starts a comment."""
    sections: dict[str, dict[str, str]] = {"search": {}, "youtube:strict": {},
                                           "youtube:moderate": {}}
    current: dict[str, str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            name = line.strip("[]").strip()
            if name not in sections:
                raise SafeSearchFileError(f"{file}:{number}: unknown section [{name}]; "
                                          f"use one of {', '.join(sections)}")
            current = sections[name]
            continue
        parts = line.split()
        if len(parts) != 2 or current is None:
            raise SafeSearchFileError(f"{file}:{number}: expected `name target` under a "
                                      f"[section], got {line!r}")
        current[parts[0].lower().rstrip(".")] = parts[1].lower().rstrip(".")
    return SafeSearchConfig(sections["search"], sections["youtube:strict"],
                            sections["youtube:moderate"])


class SafeSearchResolver:
    """Rewrites the names of ``config`` for groups that have the matching switch on."""

    def __init__(self, config: SafeSearchConfig, engine: Engine, counters: DnsCounters,
                 next_link: Resolver) -> None:
        self.config = config
        self.engine = engine
        self.next = next_link
        self.counters = counters
        self._names = config.names
        self._memo: dict[tuple[bytes, str], Entry] = {}

    def resolve(self, query: Query) -> Result:
        question = query.question
        if question.qname not in self._names or query.decision is None:
            return self.next.resolve(query)
        target = self._target(question.qname, query.decision.group)
        if target is None:
            return self.next.resolve(query)
        query.decision = query.decision._replace(reason=Reason.SAFE_SEARCH,
                                                 detail=f"answered with {target}")
        self.counters.rewritten += 1
        if _is_ip(target):
            return _address_answer(question, target)
        key = (cache_key(question), target)
        entry = self._memo.get(key)
        now = time.monotonic()
        if entry is not None and now < entry.expires:
            return _rewritten(entry.answer(now))
        return self._rewrite(query, key, target)

    def _target(self, qname: str, group_id: str | None) -> str | None:
        group = self.engine.snapshot.groups.get(group_id) if group_id else None
        if group is None:
            return None
        if group.youtube == "strict" and qname in self.config.youtube_strict:
            return self.config.youtube_strict[qname]
        if group.youtube == "moderate" and qname in self.config.youtube_moderate:
            return self.config.youtube_moderate[qname]
        if group.safe_search and qname in self.config.search:
            return self.config.search[qname]
        return None

    async def _rewrite(self, query: Query, key: tuple[bytes, str], target: str) -> Answer:
        question = query.question
        target_question = _question_for(target, question)
        sub = Query(target_question, b"", query.client, query.udp, query.started)
        result = self.next.resolve(sub)
        answer = result if isinstance(result, Answer) else await result
        wire = compose(question, target, answer.wire)
        scan = scan_response(wire, question.wire)
        if scan is None or not scan.ttls or answer.kind in (AnswerKind.SERVFAIL,
                                                             AnswerKind.STALE):
            # Not worth keeping: answer this once, as it is.
            return Answer(wire, AnswerKind.REWRITTEN, scan.rcode if scan else Rcode.SERVFAIL)
        now = time.monotonic()
        entry = Entry(scan, scan.ttls, question.do, now)
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.clear()
        self._memo[key] = entry
        return _rewritten(entry.answer(now))


def compose(question: Question, target: str, target_wire: bytes) -> bytes:
    """CNAME ``qname`` → ``target``, then the target's answer and authority records.

    Built with dnslib: the target's records arrive compressed against another message.
    """
    try:
        upstream = DNSRecord.parse(target_wire)
        rcode = upstream.header.rcode
        answers, authority = upstream.rr, upstream.auth
    except Exception:  # a target answer we cannot read: the CNAME alone still does the job
        rcode, answers, authority = Rcode.SERVFAIL, [], []
    header = DNSHeader(id=0, bitmap=QR | RA | (question.flags & RD), q=1)
    header.rcode = rcode
    response = DNSRecord(header, q=DNSQuestion(question.qname or ".", question.qtype,
                                               question.qclass))
    response.add_answer(RR(question.qname or ".", QTYPE.CNAME, ttl=REWRITE_TTL,
                           rdata=CNAME(target + ".")))
    for rr in answers:
        response.add_answer(rr)
    for rr in authority:
        response.add_auth(rr)
    wire = response.pack()
    # Keep the question exactly as our key has it (lower case, uncompressed).
    return wire[:12] + question.wire + wire[12 + len(question.wire):]


def _question_for(target: str, question: Question) -> Question:
    wire = encode_name(target) + question.wire[-4:]
    return Question(0, RD, target, question.qtype, question.qclass, wire, 12 + len(wire),
                    question.edns, question.udp_size, question.do, 0)


def _rewritten(answer: Answer) -> Answer:
    return Answer(answer.wire, AnswerKind.REWRITTEN, answer.rcode, (), answer.edns)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _address_answer(question: Question, target: str) -> Answer:
    address = ipaddress.ip_address(target)
    wanted = QType.A if address.version == 4 else QType.AAAA
    if question.qtype == wanted:
        wire = make_response(question, Rcode.NOERROR, record(wanted, REWRITE_TTL,
                                                             address.packed), 1)
    else:
        wire = make_response(question, Rcode.NOERROR)  # NODATA: the browser uses the other
    return Answer(wire, AnswerKind.REWRITTEN, Rcode.NOERROR)
