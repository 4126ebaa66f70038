"""The answer cache: upstream answers kept as bytes, so that a hit costs almost nothing.

An entry holds the response as it will be sent (in base form, see :mod:`gateway.dns.wire`) and
the offsets of its TTL fields. A hit patches the TTLs at most once a second and hands out the
same :class:`Answer` until the next second; the server then only writes the client's ID and
question into a copy. The key is (qname, qtype, qclass, DO bit): the lower-case question bytes,
plus one byte when DO is set.

- TTLs are clamped to ``dns.min_ttl``/``dns.max_ttl``.
- Negative answers (NXDOMAIN, NODATA) are cached for the SOA's negative TTL (RFC 2308); one
  without an SOA is not cached.
- Popular entries are fetched again shortly before they expire (prefetch), so that a busy name
  never makes a classroom wait for the upstream.
- When every upstream fails, an expired entry is served with a TTL of 30 s (serve-stale,
  RFC 8767) for up to a day after it expired, and for the next 30 s straight away while the
  upstreams are retried behind it; without one, SERVFAIL.
- The cache holds ``dns.cache_size`` entries of at most 4 KB and forgets the least recently
  used first.

Only upstream answers are cached: block answers and safe-search rewrites depend on the client
and are made fresh by their links, which sit above this one.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass

from gateway.config import DnsConfig
from gateway.dns.counters import DnsCounters
from gateway.dns.query import (
    Answer,
    AnswerKind,
    DnsReason,
    Query,
    Resolver,
    Result,
    UpstreamFailure,
)
from gateway.dns.wire import Question, Rcode, Scanned, make_response, with_opt

log = logging.getLogger(__name__)

STALE_TTL = 30  # RFC 8767 section 4: the TTL of a stale answer
MAX_STALE = 86400.0  # RFC 8767 suggests one to three days; a day keeps memory honest
PREFETCH_HITS = 3  # hits during an entry's life that make it popular
PREFETCH_AT = 0.9  # fraction of the TTL after which a popular entry is fetched again
MAX_ENTRY_BYTES = 4096  # larger answers (rare: big TXT sets) are passed on, not kept

_TTL = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class CacheConfig:
    size: int = 10000
    min_ttl: int = 0
    max_ttl: int = 86400

    @classmethod
    def from_dns_config(cls, dns: DnsConfig) -> CacheConfig:
        return cls(dns.cache_size, dns.min_ttl, dns.max_ttl)

    def describe(self) -> str:
        if not self.size:
            return "cache off (stale answers and SERVFAIL still come from here)"
        return f"cache of {self.size} answers, TTL clamped to {self.min_ttl}–{self.max_ttl} s"


class Entry:
    """One cached response; :meth:`answer` gives it with its TTLs counted down."""

    __slots__ = ("_answer", "_second", "base", "do", "expires", "hits", "names", "offsets",
                 "prefetch_at", "rcode", "refreshing", "stale_until", "stored", "ttls")

    def __init__(self, scan: Scanned, ttls: tuple[int, ...], do: bool, now: float) -> None:
        self.base = scan.base
        self.offsets = scan.ttl_offsets
        self.ttls = ttls
        self.names = scan.names
        self.rcode = scan.rcode
        self.do = do
        self.stored = now
        ttl = min(ttls) if ttls else 0
        self.expires = now + ttl
        self.prefetch_at = now + ttl * PREFETCH_AT
        self.hits = 0
        self.refreshing = False
        self.stale_until = 0.0  # after an upstream failure: serve stale without asking again
        self._second = -1
        self._answer: Answer | None = None

    def answer(self, now: float) -> Answer:
        second = int(now - self.stored)
        if second != self._second:
            self._second = second
            self._answer = self.build(second, AnswerKind.CACHED)
        return self._answer  # type: ignore[return-value]

    def stale_answer(self) -> Answer:
        wire = bytearray(self.base)
        for offset in self.offsets:
            _TTL.pack_into(wire, offset, STALE_TTL)
        base = bytes(wire)
        return Answer(base, AnswerKind.STALE, self.rcode, self.names, with_opt(base, self.do))

    def build(self, elapsed: int, kind: AnswerKind) -> Answer:
        wire = bytearray(self.base)
        for offset, ttl in zip(self.offsets, self.ttls, strict=True):
            _TTL.pack_into(wire, offset, ttl - elapsed if ttl > elapsed else 0)
        base = bytes(wire)
        return Answer(base, kind, self.rcode, self.names, with_opt(base, self.do), entry=self)


def cache_key(question: Question) -> bytes:
    # A question section ends with its 4-byte type and class, so one more byte cannot make it
    # equal another question: the DO variant never collides with a plain key.
    return question.wire + b"\x80" if question.do else question.wire


class CachingResolver:
    """Answers from the cache, else from the next link (the upstreams), and keeps the answer."""

    def __init__(self, config: CacheConfig, counters: DnsCounters, next_link: Resolver) -> None:
        self.config = config
        self.counters = counters
        self.next = next_link
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self._inflight: dict[bytes, asyncio.Future[Answer | None]] = {}
        self._tasks: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, query: Query) -> Result:
        question = query.question
        key = question.wire + b"\x80" if question.do else question.wire
        entry = self._entries.get(key)
        if entry is not None:
            now = time.monotonic()
            if now < entry.expires:
                self._entries.move_to_end(key)
                self.counters.cache_hits += 1
                entry.hits += 1
                if now >= entry.prefetch_at and entry.hits >= PREFETCH_HITS \
                        and not entry.refreshing:
                    self._prefetch(key, entry, query)
                return entry.answer(now)
            if now < entry.stale_until:
                # RFC 8767 section 5: the upstreams failed moments ago; answer stale at once
                # rather than make every client wait for them again, and retry behind it.
                self.counters.stale_answers += 1
                if not entry.refreshing:
                    self._prefetch(key, entry, query)
                return entry.stale_answer()
        self.counters.cache_misses += 1
        return self._fetch(query, key)

    async def _fetch(self, query: Query, key: bytes) -> Answer:
        # Queries for the same key while one is out wait for it: one upstream round trip.
        waiting = self._inflight.get(key)
        if waiting is not None:
            answer = await asyncio.shield(waiting)
        else:
            future: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            try:
                answer = await self._ask(query, key)
            except UpstreamFailure:
                answer = None
            except BaseException:
                future.set_result(None)
                raise
            finally:
                del self._inflight[key]
            if not future.done():
                future.set_result(answer)
        if answer is not None:
            return answer
        return self._failed(query, key)

    def _failed(self, query: Query, key: bytes) -> Answer:
        self.counters.upstream_failures += 1
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and now - entry.expires < MAX_STALE:
            self.counters.stale_answers += 1
            entry.stale_until = now + STALE_TTL
            return entry.stale_answer()
        self.counters.servfail += 1
        query.reason = DnsReason.UPSTREAM_FAILURE
        return Answer(make_response(query.question, Rcode.SERVFAIL), AnswerKind.SERVFAIL,
                      Rcode.SERVFAIL)

    async def _ask(self, query: Query, key: bytes) -> Answer:
        answer = await self.next.resolve(query)  # type: ignore[misc]
        scan = answer.scan
        if scan is None or not self.config.size:
            return answer
        ttls = self._ttls(scan)
        if ttls is None:
            return answer
        now = time.monotonic()
        entry = Entry(scan, ttls, query.question.do, now)
        self._store(key, entry, now)
        return entry.build(0, AnswerKind.UPSTREAM)

    def _ttls(self, scan: Scanned) -> tuple[int, ...] | None:
        """The TTLs to keep, clamped; None for an answer not to cache."""
        if scan.rcode not in (Rcode.NOERROR, Rcode.NXDOMAIN):
            return None
        if len(scan.base) > MAX_ENTRY_BYTES:
            return None  # a few huge answers must not fill the memory the cache may use
        if scan.negative and scan.soa_ttl is None:
            return None  # RFC 2308 section 5: no SOA, no negative caching
        if not scan.ttls:
            return None
        low, high = self.config.min_ttl, self.config.max_ttl
        return tuple(low if t < low else high if t > high else t for t in scan.ttls)

    def _store(self, key: bytes, entry: Entry, now: float) -> None:
        entries = self._entries
        entries[key] = entry
        entries.move_to_end(key)
        while len(entries) > self.config.size:
            entries.popitem(last=False)

    def _prefetch(self, key: bytes, entry: Entry, query: Query) -> None:
        entry.refreshing = True
        self.counters.prefetches += 1
        task = asyncio.get_running_loop().create_task(self._refresh(key, entry, query))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, key: bytes, entry: Entry, query: Query) -> None:
        try:
            answer = await self.next.resolve(query)  # type: ignore[misc]
        except UpstreamFailure:
            entry.refreshing = False  # try again on a later hit; serve-stale covers the rest
            return
        except Exception:
            log.exception("prefetch failed")
            entry.refreshing = False
            return
        scan = answer.scan
        ttls = self._ttls(scan) if scan is not None else None
        if ttls is None:
            entry.refreshing = False
            return
        now = time.monotonic()
        self._store(key, Entry(scan, ttls, query.question.do, now), now)  # type: ignore[arg-type]
