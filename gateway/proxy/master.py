"""mitmproxy embedded in kalkan: its ``Master`` with only the addons kalkan needs, in order.

Stock ``mitmdump`` loads some thirty addons and calls each of them on every event; a Master with
only the handful below does about 1.8 times the requests per second (issue 7's calibration), so
the list is kept short and every entry says why it is there and why there.

Modes: ``transparent`` (classroom networks: nftables redirects 80 and 443/tcp to it, and the
original destination comes from SO_ORIGINAL_DST) and ``regular`` (explicit proxy, for PCs set
up by hand). One process runs both. ``proxy.workers`` processes share the listening ports
(SO_REUSEPORT) so that every core works; each keeps its own policy snapshot current.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import multiprocessing
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mitmproxy import master, options
from mitmproxy.addons import next_layer, proxyserver, tlsconfig
from sqlalchemy.orm import Session, sessionmaker

from gateway import sd_notify
from gateway.config import Config, parse_upstream
from gateway.events.queue import EventQueue
from gateway.proxy import handler, server_names
from gateway.proxy.block_page import BlockPage, BlockPageAddon, PageSettings
from gateway.proxy.ca import ca_dir, require_ca
from gateway.proxy.destinations import AddressBook, DestinationSettings, safe_search_aliases
from gateway.proxy.downloads import DownloadsAddon
from gateway.proxy.event_tap import EventTapAddon
from gateway.proxy.http_policy import HttpPolicyAddon
from gateway.proxy.inspection import Inspection
from gateway.proxy.offline_page import OfflinePageAddon
from gateway.proxy.safe_search import SafeSearchAddon
from gateway.proxy.sni_gate import SniGateAddon
from policies.engine import Engine
from policies.errors import KalkanError

log = logging.getLogger(__name__)

SECRET_FILE = "proxy-secret"
GC_THRESHOLD = 20_000  # allocations between young-generation collections (Python: 700)
SWITCH_INTERVAL = 0.0005  # seconds a thread may keep the interpreter while another waits


@dataclass(frozen=True)
class ProxySettings:
    """Everything the proxy reads from kalkan.yaml, resolved once."""

    regular: tuple[str, int] | None = ("127.0.0.1", 3128)
    transparent: tuple[str, int] | None = None
    language: str = "ky"
    block_page_address: str | None = None
    inspection: Inspection = field(default_factory=Inspection)
    ca_dir: Path = Path("/var/lib/kalkan/ca")
    verify_destination: bool = True
    upstreams: tuple[tuple[str, int], ...] = ()
    requests_per_hour: int = 10
    secret: bytes = b""
    workers: int = 1

    @classmethod
    def from_config(cls, config: Config, *, secret: bytes = b"",
                    regular: tuple[str, int] | bool | None = True,
                    transparent: tuple[str, int] | bool | None = True) -> ProxySettings:
        """``regular``/``transparent``: True takes kalkan.yaml's address, None turns it off."""
        proxy = config.proxy
        upstreams = []
        for text in config.dns.upstreams:
            up = parse_upstream(text)
            if not up.tls:  # the address check asks plain DNS; DoT-only schools use the system's
                upstreams.append((up.host, up.port))
        return cls(
            regular=proxy.listen_address if regular is True else regular or None,
            transparent=(proxy.transparent_listen_address if transparent is True
                         else transparent or None),
            language=config.language,
            block_page_address=(str(proxy.block_page_ip) if proxy.block_page_ip else None),
            inspection=Inspection.load(proxy.inspect_groups, proxy.do_not_inspect_file),
            ca_dir=ca_dir(config.data_dir), verify_destination=proxy.verify_destination,
            upstreams=tuple(upstreams), requests_per_hour=proxy.site_requests_per_hour,
            secret=secret, workers=proxy.workers or default_workers())

    @property
    def modes(self) -> list[str]:
        specs = []
        if self.regular:
            specs.append(f"regular@{_spec_address(self.regular)}")
        if self.transparent:
            host, port = self.transparent
            # "0.0.0.0" or "::" means every address, of both families: the firewall redirects
            # IPv6 classrooms as well, and `redirect` delivers to the incoming interface's own
            # address (mitmproxy binds an IPv4 and an IPv6-only socket for an empty host).
            wildcard = host in ("0.0.0.0", "::")
            specs.append(f"transparent@{port}" if wildcard
                         else f"transparent@{_spec_address(self.transparent)}")
        return specs


def default_workers() -> int:
    """One process per core: each has its own interpreter lock, and mitmproxy's per-request
    work is Python (a second process nearly doubles the HTTP requests per second)."""
    return max(1, min(os.cpu_count() or 1, 64))


def _spec_address(address: tuple[str, int]) -> str:
    """mitmproxy splits a mode's address at its last colon and takes the host as written: an
    IPv6 address goes without brackets ("regular@::1:3128"); with them it is no address."""
    host, port = address
    return f"{host}:{port}"


def load_secret(data_dir: Path) -> bytes:
    """The key that signs block-page forms: one per gateway, kept across restarts so that a
    page opened before a restart can still be sent, and shared by all proxy processes."""
    path = Path(data_dir) / SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return data


def build_addons(settings: ProxySettings, engine: Engine, events: EventQueue,
                 sessions: sessionmaker[Session] | None, *,
                 category_names: dict[str, dict[str, str]] | None = None,
                 extra: Sequence[Any] = ()) -> list[Any]:
    """The ordered addon list. mitmproxy calls the addons of each event in this order."""
    block_ips = frozenset({str(ipaddress.ip_address(settings.block_page_address))}
                          if settings.block_page_address else ())
    addresses = (AddressBook(DestinationSettings(settings.upstreams, safe_search_aliases()))
                 if settings.verify_destination else None)
    page = BlockPage(PageSettings(settings.language, settings.secret,
                                  settings.block_page_address, settings.requests_per_hour),
                     timezone=lambda: engine.snapshot.timezone, category_names=category_names)
    inspecting = settings.inspection.enabled
    return [
        # mitmproxy's own: the listening sockets and the connections (the Master finds it by
        # name to start the servers), then the choice of protocol layer on each connection
        # (transparent mode gets TLS and plain HTTP on one port).
        proxyserver.Proxyserver(),
        next_layer.NextLayer(),
        # Only when a group is inspected: certificates from the school CA. Without it mitmproxy
        # would never need a CA, and kalkan never lets it make one of its own.
        *([tlsconfig.TlsConfig()] if inspecting else []),
        # Test hooks (a fixed upstream address, …) go before ours so that ours see their work.
        *extra,
        # First of ours: HTTPS is decided on the ClientHello, before any byte reaches a site.
        SniGateAddon(engine, settings.inspection, addresses, block_ips),
        # Before the policy: the gateway's own pages (the form's target on a blocked host, the
        # report form) must never be blocked themselves.
        BlockPageAddon(page, sessions, gateway_hosts=block_ips),
        # Every request on host + URL; blocked → the block page; notes the decision in metadata.
        HttpPolicyAddon(engine, page, addresses, block_ips),
        # After the policy: only allowed requests are rewritten to their safe variants.
        SafeSearchAddon(engine),
        # After the policy: may still refuse an allowed URL for what it turns out to be.
        DownloadsAddon(engine, page),
        # Only on errors: an allowed site that cannot be reached gets "no internet", not a 502.
        OfflinePageAddon(settings.language),
        # Last: sees the final word on every connection and request.
        EventTapAddon(events),
    ]


def mitmproxy_options(settings: ProxySettings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "mode": settings.modes,
        # Decide first, connect later: a blocked site never sees even a TCP handshake from us,
        # and an allowed one is connected only once its name is known.
        "connection_strategy": "lazy",
        # Downloads and video stream through instead of being held in memory.
        "stream_large_bodies": "256k",
        # Never ~/.mitmproxy: the school CA (if any) lives in data_dir/ca.
        "confdir": str(settings.ca_dir),
        "ignore_hosts": [], "allow_hosts": [], "tcp_hosts": [],
        "rawtcp": False, "http3": False,  # QUIC is dropped by the firewall; browsers use TCP
    }
    if settings.inspection.enabled:
        opts["ssl_insecure"] = False  # inspected sites are still verified against real CAs
    return opts


class KalkanMaster(master.Master):
    """A Master that starts its servers, reports where it listens, and runs until told to stop."""

    def __init__(self, settings: ProxySettings, addons: Iterable[Any],
                 loop: asyncio.AbstractEventLoop | None = None, *,
                 extra_options: dict[str, Any] | None = None) -> None:
        super().__init__(options.Options(), event_loop=loop)
        handler.install()  # passthrough round mitmproxy's layers; hooks straight to addons
        server_names.install()  # explicit mode: one address lookup per name per 30 s
        self.settings = settings
        self.addons.add(*addons)
        self.options.update(**mitmproxy_options(settings), **(extra_options or {}))
        self.listening: list[tuple[str, int]] = []

    async def run(self, on_ready: Callable[[KalkanMaster], None] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(_exception_handler)
        server = self.addons.get("proxyserver")
        if not await server.setup_servers():
            raise KalkanError(f"the proxy could not listen on {', '.join(self.settings.modes)}",
                              hint="see the error above; is another program on that port?")
        self.listening = [tuple(addr[:2]) for addr in server.listen_addrs()]
        await self.running()
        if on_ready is not None:
            on_ready(self)
        try:
            await self.should_exit.wait()
        finally:
            await self.done()


def _exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Connections still open at shutdown end as cancelled tasks: that is no error."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)


def quiet_mitmproxy(level: str = "info") -> None:
    """mitmproxy logs every connection at INFO: kalkan's event log already says what matters,
    and formatting a line per connection costs throughput."""
    logging.getLogger("mitmproxy").setLevel(logging.DEBUG if level == "debug"
                                            else logging.WARNING)


def share_ports() -> None:
    """Let several proxy processes listen on one port (SO_REUSEPORT): the kernel spreads new
    connections over them. mitmproxy opens its sockets with ``asyncio.start_server`` and no
    such switch, so its module gets an asyncio whose ``start_server`` sets it."""
    from mitmproxy.proxy import mode_servers

    class _AsyncioSharingPorts:
        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

        @staticmethod
        async def start_server(*args: Any, **kwargs: Any) -> asyncio.Server:
            kwargs.setdefault("reuse_port", True)
            return await asyncio.start_server(*args, **kwargs)

    mode_servers.asyncio = _AsyncioSharingPorts()  # type: ignore[assignment]


def _lean_tasks() -> None:
    """mitmproxy names every task it makes (a hook, a connection) and reads the environment
    for a test name each time; kalkan never lists mitmproxy's tasks, so they go unnamed."""
    from mitmproxy.utils import asyncio_utils

    def create_task(coro: Any, *, name: str, client: tuple[Any, ...] | None = None
                    ) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(coro)

    asyncio_utils.create_task = create_task  # type: ignore[assignment]


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: passthrough relays bytes in the event loop, and uvloop's is
    faster at it (issue 7: 690 MB/s against squid's 827 MB/s)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def category_names_from(sessions: sessionmaker[Session] | None) -> dict[str, dict[str, str]]:
    """The policy's own category names (custom categories included), if the database answers."""
    if sessions is None:
        return {}
    from sqlalchemy import select

    from policies.models import Category

    try:
        with sessions() as db:
            return {row.id: dict(row.names or {}) for row in db.scalars(select(Category))}
    except Exception:
        log.warning("category names not readable from the database; using the shipped ones")
        return {}


def run_worker(config: Config, settings: ProxySettings, worker: int = 0, *,
               events: EventQueue | None = None,
               on_ready: Callable[[KalkanMaster], None] | None = None) -> None:
    """One proxy process: its own engine (kept current), event queue and Master."""
    from gateway.bootstrap import open_database, open_engine_for

    quiet_mitmproxy(config.logging.level)
    if settings.workers > 1:
        share_ports()
    sessions = open_database(config, upgrade=False)
    engine = open_engine_for(config, sessions, watch=True)
    writer = None
    if events is None:  # a real worker: its events go to the database through its own writer
        from gateway.events.writer import start_writer

        events = EventQueue()
        writer = start_writer(config, sessions, events, process=f"proxy-{worker}")
    names = category_names_from(sessions)
    # Everything loaded so far (mitmproxy, SQLAlchemy, the compiled policy) lives as long as
    # the process: out of the collector's sight, a full collection no longer walks it, which
    # took tens of milliseconds and showed as the p99 of request latency.
    gc.collect()
    gc.freeze()
    # mitmproxy makes some thirty objects per request: a larger first generation collects every
    # few hundred requests instead of every few (the DNS resolver does the same).
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    _lean_tasks()
    if writer is not None:
        # The writer thread shares the interpreter: hand the lock back to the event loop within
        # half a millisecond (Python's default is 5 ms, paid at every hand-over while a batch
        # is written, and it showed as the p99 of request latency).
        sys.setswitchinterval(SWITCH_INTERVAL)

    watchdogs: set[asyncio.Task[None]] = set()  # a reference, or the task may be collected

    async def main() -> None:
        proxy = KalkanMaster(settings, build_addons(settings, engine, events, sessions,
                                                    category_names=names))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, proxy.shutdown)

        def ready(m: KalkanMaster) -> None:
            where = ", ".join(f"{h}:{p}" for h, p in m.listening)
            log.info("proxy worker %d listening on %s", worker, where)
            sd_notify.ready(f"proxy worker {worker} on {where}")  # Type=notify: started now
            watchdogs.add(asyncio.get_running_loop().create_task(sd_notify.watchdog_pings()))
            if on_ready is not None:
                on_ready(m)

        await proxy.run(ready)

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(main())
    engine.stop()
    if writer is not None:
        writer.stop()  # flushes what is still queued


def serve_proxy(config: Config, *, regular: tuple[str, int] | bool | None = True,
                transparent: tuple[str, int] | bool | None = True,
                workers: int | None = None) -> None:
    """Run the proxy in the foreground (``kalkan proxy``), in ``workers`` processes."""
    settings = ProxySettings.from_config(config, secret=load_secret(config.data_dir),
                                         regular=regular, transparent=transparent)
    if workers is not None:
        settings = replace(settings, workers=workers)
    if not settings.modes:
        raise KalkanError("the proxy has nowhere to listen",
                          hint="set proxy.listen or proxy.transparent_listen in kalkan.yaml")
    if settings.inspection.enabled:
        require_ca(settings.ca_dir)
    if settings.workers == 1:
        run_worker(config, settings)
        return
    # fork: the children start from this parent's imports (mitmproxy is slow to import), and
    # each opens its own database connections and engine after the fork.
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=run_worker, args=(config, settings, n),
                                name=f"kalkan-proxy-{n}", daemon=False)
                for n in range(settings.workers)]
    for child in children:
        child.start()

    def stop(signum: int, _frame: Any) -> None:
        for child in children:
            if child.is_alive() and child.pid:
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()


class ProxyThread:
    """The proxy in a thread of this process, for tests and for embedding: ``start()`` returns
    once it listens; ``listening`` says where (port 0 in the settings picks a free port)."""

    def __init__(self, settings: ProxySettings, engine: Engine, events: EventQueue,
                 sessions: sessionmaker[Session] | None = None, *,
                 extra: Sequence[Any] = (), extra_options: dict[str, Any] | None = None) -> None:
        self.settings = settings
        self.extra_options = extra_options
        self.engine = engine
        self.events = events
        self.sessions = sessions
        self.extra = extra
        self.master: KalkanMaster | None = None
        self.listening: list[tuple[str, int]] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0) -> ProxyThread:
        self._thread = threading.Thread(target=self._run, name="kalkan-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the proxy did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self.master = KalkanMaster(self.settings, build_addons(
                self.settings, self.engine, self.events, self.sessions, extra=self.extra),
                extra_options=self.extra_options)

            def ready(m: KalkanMaster) -> None:
                self.listening = m.listening
                self._ready.set()

            await self.master.run(ready)

        try:
            with asyncio.Runner(loop_factory=new_event_loop) as runner:
                runner.run(main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    def address(self, mode: str = "regular") -> tuple[str, int]:
        """The address of the first server of ``mode`` (regular servers are started first)."""
        index = 0 if mode == "regular" or not self.settings.regular else 1
        return self.listening[index]

    def stop(self) -> None:
        if self.master is not None:
            self.master.shutdown()
        if self._thread is not None:
            self._thread.join(10)
