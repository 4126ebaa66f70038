"""Running the resolver: engine, chain, sockets, status file, and worker processes.

:class:`DnsService` is one resolver in one event loop (the tests run it in a thread);
:func:`serve_dns` runs it as ``kalkan dns`` does, in one or more worker processes that share
the listening ports (SO_REUSEPORT) and the memory-mapped blocklist index. Each worker keeps
its own policy snapshot current (``Engine.watch``), so a policy change reaches all of them
within ``policy.reload_interval`` plus the compile time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from gateway import sd_notify
from gateway.config import Config, parse_listen
from gateway.dns.access import AccessConfig
from gateway.dns.cache import CacheConfig
from gateway.dns.canary import CanaryConfig
from gateway.dns.chain import ChainConfig, build_chain
from gateway.dns.counters import DnsCounters
from gateway.dns.local_zones import LocalZonesConfig
from gateway.dns.policy import BlockConfig
from gateway.dns.safe_search import SafeSearchConfig
from gateway.dns.server import DnsServer
from gateway.dns.upstream import UpstreamConfig
from gateway.events.queue import EventQueue
from policies.engine import Engine
from policies.lookup import CategoryLookup

log = logging.getLogger(__name__)

STATUS_INTERVAL = 3.0  # seconds between writes of status/dns.json
SWITCH_INTERVAL = 0.001  # seconds a thread may keep the interpreter while others wait
GC_THRESHOLD = 20_000  # allocations between young-generation collections (Python: 700)


def chain_config(config: Config, listen: list[tuple[str, int]], *,
                 rate: float | None = None, burst: float | None = None,
                 tls_context: ssl.SSLContext | None = None,
                 safe_search_file: Path | None = None) -> ChainConfig:
    """Each link's settings, from kalkan.yaml (and the shipped safe_search.txt)."""
    block = BlockConfig.from_config(config.dns, config.proxy, listen)
    own = [host for host, _port in listen] + [block.address_v4, block.address_v6]
    return ChainConfig(
        access=AccessConfig.from_dns_config(config.dns, rate=rate, burst=burst),
        local_zones=LocalZonesConfig.for_addresses(own),
        canary=CanaryConfig(),
        block=block,
        safe_search=SafeSearchConfig.load(safe_search_file),
        cache=CacheConfig.from_dns_config(config.dns),
        upstream=UpstreamConfig.from_dns_config(config.dns, tls_context=tls_context),
    )


class DnsService:
    """One resolver: an engine on the database, the chain, the sockets and the status file."""

    def __init__(self, config: Config, sessions: sessionmaker[Session] | None = None, *,
                 engine: Engine | None = None,
                 listen: Sequence[str | tuple[str, int]] | None = None,
                 events: EventQueue | None = None, categories: CategoryLookup | None = None,
                 rate: float | None = None, burst: float | None = None,
                 tls_context: ssl.SSLContext | None = None, reuse_port: bool = False,
                 status_path: Path | None = None, worker: int = 0,
                 watch: float | None = None, safe_search_file: Path | None = None) -> None:
        if engine is None:
            if sessions is None:
                raise ValueError("give the database sessions or an engine")
            engine = Engine.from_database(sessions, default_group=config.policy.default_group,
                                          categories=categories)
        self.config = config
        self.engine = engine
        # Tuples pass as they are: tests listen on port 0 (a free port), which the file refuses.
        self.listen = ([a if isinstance(a, tuple) else parse_listen(a) for a in listen]
                       if listen else config.dns.listen_addresses)
        self.events = events if events is not None else EventQueue()
        self.counters = DnsCounters()
        self.chain_config = chain_config(config, self.listen, rate=rate, burst=burst,
                                         tls_context=tls_context,
                                         safe_search_file=safe_search_file)
        self.chain = build_chain(self.chain_config, engine, self.events, self.counters)
        self.server = DnsServer(self.chain.first, self.counters, self.listen,
                                reuse_port=reuse_port, replay=self.chain.replay)
        self.status_path = status_path
        self.worker = worker
        self.watch = watch  # seconds between policy version polls; None: the caller watches
        self.started = time.time()
        self._status_task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def bound(self) -> list[tuple[str, int]]:
        return self.server.bound

    async def start(self) -> None:
        await self.server.start()
        self.chain.upstream.start()
        if self.watch is not None:
            self.engine.watch(self.watch)
        if self.status_path is not None:
            self._status_task = asyncio.get_running_loop().create_task(self._write_status())

    async def stop(self) -> None:
        if self._status_task is not None:
            self._status_task.cancel()
        await self.server.stop()
        self.chain.upstream.close()
        if self.watch is not None:
            self.engine.stop()

    def status(self) -> dict[str, Any]:
        """Counters and state, as status/dns.json holds them."""
        snapshot = self.engine.snapshot
        return {
            "pid": os.getpid(), "worker": self.worker, "started": self.started,
            "updated": time.time(),
            "listen": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.bound],
            "counters": self.counters.as_dict(),
            "events": {"queued": len(self.events), "accepted": self.events.accepted,
                       "dropped": self.events.dropped},
            "cache_entries": len(self.chain.cache),
            "upstreams": self.chain.upstream.status(),
            "policy": {"version": snapshot.version, "revision": snapshot.revision},
        }

    async def _write_status(self) -> None:
        while True:
            try:
                write_json(self.status_path, self.status())  # type: ignore[arg-type]
            except OSError as exc:
                log.warning("cannot write %s: %s", self.status_path, exc)
            await asyncio.sleep(STATUS_INTERVAL)

    # --- in a thread (tests, and kalkan run later) ----------------------------------------

    def start_in_thread(self, *, use_uvloop: bool = False) -> DnsService:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = _new_loop(use_uvloop)
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="kalkan-dns", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the new, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop
        except ImportError:  # optional: plain asyncio is slower, not wrong
            log.info("uvloop is not installed; using asyncio's own loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# --- kalkan dns ------------------------------------------------------------------------------

def serve_dns(config: Config, sessions: sessionmaker[Session], *, workers: int = 1,
              listen: Sequence[str] | None = None, categories: CategoryLookup | None = None,
              rate: float | None = None, burst: float | None = None,
              events: EventQueue | None = None, write_events: bool = True) -> None:
    """Run the resolver until SIGINT or SIGTERM, in ``workers`` processes sharing the ports.

    Each worker builds its engine from the database (``policy.default_group``) and the
    blocklist index of ``data_dir`` (or ``categories``), polls for policy changes every
    ``policy.reload_interval`` seconds, and writes its access events with its own writer
    (``write_events=False``, for benchmarks: they stay on the queue). Counters go to
    ``{data_dir}/status/dns.json`` every few seconds (the sum over the workers).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    status_dir = config.status_directory
    children: list[multiprocessing.Process] = []
    if workers > 1:
        # Everything imported so far is shared with the forked workers; frozen, the garbage
        # collector never writes to it, so the pages stay shared instead of being copied.
        gc.freeze()
        context = multiprocessing.get_context("fork")
        for number in range(1, workers):
            child = context.Process(
                target=_worker, name=f"kalkan-dns-{number}", daemon=True,
                args=(config, sessions, number, listen, categories, rate, burst, status_dir),
                kwargs={"workers": workers, "write_events": write_events})
            child.start()
            children.append(child)
    try:
        _worker(config, sessions, 0, listen, categories, rate, burst, status_dir,
                workers=workers, events=events, write_events=write_events)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.join(5)


def _worker(config: Config, sessions: sessionmaker[Session], number: int,
            listen: Sequence[str] | None, categories: CategoryLookup | None,
            rate: float | None, burst: float | None, status_dir: Path, *,
            workers: int = 1, events: EventQueue | None = None,
            write_events: bool = True) -> None:
    from gateway.bootstrap import open_engine_for
    from gateway.events.writer import start_writer

    if number:
        # A forked worker must not share the parent's database connections.
        bind = sessions.kw.get("bind")
        if bind is not None:
            bind.dispose(close=False)
    if categories is None:
        # The engine every gateway process uses: the policy, and the blocklist index of
        # data_dir, both reloaded when they change.
        from blocklists.update import index_path

        if number == 0 and not index_path(config.data_dir).exists():
            log.warning("no blocklist index at %s: only the policy's own lists apply until "
                        "`kalkan blocklists update` builds it", index_path(config.data_dir))
        engine = open_engine_for(config, sessions, watch=True)
    else:  # an index given on the command line (the benchmark's)
        engine = Engine.from_database(sessions, default_group=config.policy.default_group,
                                      categories=categories)
        engine.watch(config.policy.reload_interval)
    # Each process that makes events writes them itself; a caller that passes its own queue
    # has its own writer.
    writer = None
    if events is None:
        events = EventQueue()
        if write_events:
            writer = start_writer(config, sessions, events, process=f"dns-{number}")
            # The writer thread shares the interpreter: hand the lock back to the event loop
            # within a millisecond (Python's default is 5 ms), or answers wait behind a batch.
            sys.setswitchinterval(SWITCH_INTERVAL)
    multi = workers > 1 or number > 0
    own_status = status_dir / (f"dns-worker-{number}.json" if multi else "dns.json")
    service = DnsService(config, engine=engine, listen=listen, events=events, rate=rate,
                         burst=burst, reuse_port=multi, status_path=own_status, worker=number)
    loop = _new_loop(use_uvloop=True)
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    async def main() -> None:
        await service.start()
        log.info("dns worker %d: policy revision %s in force (version %s)", number,
                 engine.snapshot.revision, engine.snapshot.version)
        # What exists now lives as long as the process: the collector need not look at it
        # again, and with a larger first generation it runs every few thousand queries rather
        # than every hundred (1.5 µs a query at 35,000 queries a second, measured).
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD, 20, 20)
        summary = None
        if number == 0 and multi:
            summary = loop.create_task(_sum_status(status_dir, workers))
        # Listening with the policy loaded: now systemd may call DNS started (kalkan-dns.service
        # is ordered before network-online.target, so classroom PCs find it filtering).
        sd_notify.ready(f"DNS worker {number}: revision {engine.snapshot.revision}")
        watchdog = loop.create_task(sd_notify.watchdog_pings())
        await stop.wait()
        watchdog.cancel()
        if summary is not None:
            summary.cancel()
        await service.stop()

    try:
        loop.run_until_complete(main())
    finally:
        engine.stop()
        if writer is not None:
            writer.stop()
        loop.close()


async def _sum_status(status_dir: Path, workers: int) -> None:
    """Worker 0 adds the workers' files up into status/dns.json."""
    while True:
        await asyncio.sleep(STATUS_INTERVAL)
        parts = []
        for number in range(workers):
            try:
                parts.append(json.loads((status_dir / f"dns-worker-{number}.json").read_text()))
            except (OSError, ValueError):
                continue
        if not parts:
            continue
        total: dict[str, Any] = {"updated": time.time(), "workers": parts,
                                 "listen": parts[0]["listen"],
                                 "upstreams": parts[0]["upstreams"],
                                 "policy": parts[0]["policy"]}
        for section in ("counters", "events"):
            total[section] = {}
            for part in parts:
                for key, value in part[section].items():
                    total[section][key] = total[section].get(key, 0) + value
        total["cache_entries"] = sum(p["cache_entries"] for p in parts)
        try:
            write_json(status_dir / "dns.json", total)
        except OSError as exc:
            log.warning("cannot write %s: %s", status_dir / "dns.json", exc)
