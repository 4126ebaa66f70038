"""The replay memo: a packet the chain has just answered is answered again from bytes.

Clients ask the same names over and over (a browser asks A, AAAA and HTTPS for every name of
a page, and asks again on the next page). Within one second, with the same policy snapshot,
the chain gives the same client the same answer to the same packet: the policy link keeps
its decision for the rest of the second, and a cache entry counts its TTLs down once a
second. So the server keeps, per client, the packet as it came (without its ID) and the
response the chain gave, and answers a repeat with the client's ID and those bytes.

A repeat still goes through what must happen for every query: the client's rate limit, the
counters, the cache entry's popularity, and an access event (the first one's, with this
query's time and latency). Only cache hits over UDP are kept: they depend on nothing but the
client, the packet, the snapshot and the second, and they are what clients repeat. Block
answers are not kept: a blocked name is seldom asked twice in a second by the same client
(its answer is cached by the client for ``BLOCK_TTL``), and keeping every one cost a fresh
blocked name 2–3 µs, more than replaying the rare repeat saves. Everything else (an upstream
answer, a stale one, SERVFAIL, a refusal, TCP) goes through the chain every time.

The memo is emptied at every new second and when the snapshot changes, so it never holds an
answer the chain would not give now; it holds at most :data:`MAX_PACKETS` packets.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.dns.access import AccessResolver
from gateway.dns.counters import DnsCounters
from gateway.dns.query import Answer, AnswerKind
from gateway.events.event import AccessEvent
from gateway.events.queue import EventQueue
from policies.engine import Engine

MAX_PACKETS = 50_000  # 50,000 × ~200 bytes: ~10 MB at worst, gone within a second
_CACHED = AnswerKind.CACHED
_new_event = tuple.__new__  # AccessEvent(...) without NamedTuple's Python-level __new__
_time = time.time


class _Replay:
    __slots__ = ("entry", "event", "tail")

    def __init__(self, tail: bytes, event: tuple, entry: Any) -> None:
        self.tail = tail  # the response without its ID
        self.event = event  # the access event's fields from channel to bypass
        self.entry = entry  # the cache entry of a cached answer: its hits make it popular


class ReplayMemo:
    """Per client, packet (without its ID) → the chain's response to it in this second."""

    def __init__(self, engine: Engine, access: AccessResolver, events: EventQueue,
                 counters: DnsCounters) -> None:
        self.engine = engine
        self.access = access
        self.events = events
        self.counters = counters
        self._second = -1
        self._snapshot: object = None
        self._clients: dict[str, dict[bytes, _Replay]] = {}
        self._size = 0

    def answer(self, data: bytes, client: str) -> bytes | None:
        """The response to a repeat of a packet answered in this second, else None."""
        now = _time()
        if int(now) != self._second or self.engine.snapshot is not self._snapshot:
            self._start(now)
            return None
        packets = self._clients.get(client)
        if packets is None:
            return None
        replay = packets.get(data[2:])
        if replay is None or not self.access.admit(client):
            return None  # a flooding client goes the long way, to its refusal
        counters = self.counters
        counters.queries += 1
        counters.cache_hits += 1
        replay.entry.hits += 1  # popular names are prefetched (gateway/dns/cache.py)
        self.events.put(_new_event(AccessEvent, (now, *replay.event,
                                                 (_time() - now) * 1000.0)))
        return data[:2] + replay.tail

    def remember(self, data: bytes, client: str, response: bytes | bytearray, answer: Answer,
                 event: AccessEvent | None) -> None:
        """Keep the chain's response to ``data`` if a repeat may be answered with it."""
        if answer.kind is not _CACHED or event is None or self._size >= MAX_PACKETS:
            return
        if int(event[0]) != self._second:
            return  # the packet came in the previous second: its answer may have changed
        packets = self._clients.get(client)
        if packets is None:
            packets = self._clients[client] = {}
        packets[data[2:]] = _Replay(bytes(response[2:]), tuple(event[1:16]), answer.entry)
        self._size += 1

    def _start(self, now: float) -> None:
        self._second = int(now)
        self._snapshot = self.engine.snapshot
        self._clients = {}
        self._size = 0
