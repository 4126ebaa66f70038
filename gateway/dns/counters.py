"""The resolver's counters: what ``kalkan status`` shows about DNS.

Plain integers on one object that every link may bump: an increment is the cheapest thing a
hot path can do, and one process has one event loop, so nothing races.
"""

from __future__ import annotations

from typing import Any


class DnsCounters:
    __slots__ = ("blocked", "cache_hits", "cache_misses", "formerr", "prefetches", "queries",
                 "rate_limited", "rate_limited_clients", "refused", "rewritten", "servfail",
                 "stale_answers", "upstream_failures")

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}
