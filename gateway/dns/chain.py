"""The path of a query, in one place: the chain of resolvers, built in order.

Each link is one concern in one module (Blocky's resolver chain). A link answers, stamping
its answer with what it is, or asks the next link. The order is the design; each step says
why it sits where it does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.dns.access import AccessConfig, AccessResolver
from gateway.dns.cache import CacheConfig, CachingResolver
from gateway.dns.canary import CanaryConfig, CanaryResolver
from gateway.dns.counters import DnsCounters
from gateway.dns.event_tap import EventTapResolver
from gateway.dns.local_zones import LocalZonesConfig, LocalZonesResolver
from gateway.dns.policy import BlockConfig, PolicyResolver
from gateway.dns.query import Resolver
from gateway.dns.replay import ReplayMemo
from gateway.dns.safe_search import SafeSearchConfig, SafeSearchResolver
from gateway.dns.upstream import UpstreamConfig, UpstreamResolver
from gateway.events.queue import EventQueue
from policies.engine import Engine

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChainConfig:
    """Each link's own settings, nothing more (see each link's ``from_…`` constructor)."""

    access: AccessConfig
    local_zones: LocalZonesConfig
    canary: CanaryConfig
    block: BlockConfig
    safe_search: SafeSearchConfig
    cache: CacheConfig
    upstream: UpstreamConfig


@dataclass(frozen=True, slots=True)
class Chain:
    """The first link, and the links the service needs to reach (counters, health, status)."""

    first: Resolver
    cache: CachingResolver
    upstream: UpstreamResolver
    replay: ReplayMemo


def build_chain(config: ChainConfig, engine: Engine, events: EventQueue,
                counters: DnsCounters) -> Chain:
    # Built from the last link up, so that each link is given the one below it.
    # Last: the only link that talks to the internet.
    upstream = UpstreamResolver(config.upstream, counters)
    # Caches upstream answers only, never per-client ones: every link that makes an answer
    # for one client (block, rewrite, refusal) sits above it. It also turns "no upstream
    # answered" into a stale answer or SERVFAIL, so nothing above it waits for more than 2 s.
    cache = CachingResolver(config.cache, counters, upstream)
    # After policy, so that a blocked search engine stays blocked; before the cache, so that
    # a rewritten answer is never served to a group whose safe search is off. Resolves its
    # targets through the cache.
    safe_search = SafeSearchResolver(config.safe_search, engine, counters, cache)
    # decide() on the qname; after the answer comes back, decide() on the names it leads to.
    policy = PolicyResolver(config.block, engine, counters, safe_search)
    # Before policy: the canaries get NXDOMAIN for every group, staff included, since
    # browsers ask them on their own, not the person at the keyboard.
    canary = CanaryResolver(config.canary, policy)
    # Before policy and the upstreams: a private address's reverse name means nothing outside
    # the school (RFC 6303), for every group; after access, so outsiders learn nothing.
    local_zones = LocalZonesResolver(config.local_zones, canary)
    # Before anything that costs work or reveals anything: outsiders and floods stop here.
    access = AccessResolver(config.access, counters, local_zones)
    # First: sees every answer, refusals included, with what the links below left on it.
    first = EventTapResolver(events, access)
    for part in (config.access, config.local_zones, config.canary, config.block,
                 config.safe_search, config.cache, config.upstream):
        log.info("dns: %s", part.describe())
    # Beside the chain, not in it: the server asks it before the chain, and it answers only
    # repeats of what the chain answered in this second, rate limit and event included.
    replay = ReplayMemo(engine, access, events, counters)
    return Chain(first, cache, upstream, replay)
