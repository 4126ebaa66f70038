"""kalkan's connection handler for mitmproxy: its own, with two changes that cost mitmproxy
most of its time per connection and per request in kalkan's profile (bench/proxy_bench.sh):

- a passthrough connection (the SNI gate let it through untouched) is handed to
  :class:`~gateway.proxy.relay.Relay` as soon as the server connection is open and the
  ClientHello went on, so its bytes never travel mitmproxy's layers;
- hooks go straight to the addons' handlers, found once per Master: mitmproxy walks every addon
  with ``getattr`` and a ``safecall`` context per hook, then once more for an ``update`` hook.

:func:`install` makes mitmproxy's servers use it; it also drops mitmproxy's run-time type check
of every request and response it builds (a debug aid: ``python -O`` drops it as well).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

from mitmproxy import exceptions, flow
from mitmproxy import http as mitmproxy_http
from mitmproxy.addonmanager import traverse
from mitmproxy.connection import Connection
from mitmproxy.proxy import commands, mode_servers

from gateway.proxy.relay import BYTES, RELAY, Relay

log = logging.getLogger(__name__)


def _can_relay(handler: Any, server: Connection) -> bool:
    if getattr(handler.client, RELAY, None) is not server or handler.client.tls_established:
        return False
    ios = (handler.transports.get(handler.client), handler.transports.get(server))
    for io in ios:
        if io is None or not isinstance(io.reader, asyncio.StreamReader):
            return False
        if io.reader.at_eof() or io.reader.exception() is not None:
            return False
        if io.writer is None or io.writer.is_closing():
            return False
    return True


def _handlers(master: Any, name: str) -> tuple[Callable[..., Any], ...]:
    """The addons' handlers of hook ``name``, in order, found once per Master (its addons are
    fixed once it runs). mitmproxy walks every addon with ``getattr`` and a ``safecall``
    context on each hook, then once more for an ``update`` hook no addon of kalkan's has."""
    table: dict[str, tuple[Callable[..., Any], ...]] | None = getattr(master, "_kalkan_hooks",
                                                                        None)
    if table is None:
        table = master._kalkan_hooks = {}
    found = table.get(name)
    if found is None:
        found = table[name] = tuple(
            func for addon in traverse(master.addons.chain)
            if callable(func := getattr(addon, name, None)))
    return found


class KalkanConnectionHandler(mode_servers.ProxyConnectionHandler):
    """mitmproxy's connection handler, with the direct relay for passthrough connections and
    a precomputed table of hook handlers."""

    async def handle_hook(self, hook: commands.StartHook) -> None:
        handlers = _handlers(self.master, hook.name)
        if not handlers:
            return
        (data,) = hook.args()
        watchdog = self.timeout_watchdog
        watchdog.can_timeout.clear()  # as mitmproxy's disarm(): no timeout inside a hook
        watchdog.blocker += 1
        try:
            for func in handlers:
                try:
                    result = func(data)
                    if result is not None and inspect.isawaitable(result):
                        await result
                except exceptions.AddonHalt:
                    return
                except Exception as exc:  # an addon's bug must not end the connection
                    log.error("Addon error: %s", exc, exc_info=True)
            if isinstance(data, flow.Flow) and data.intercepted:
                await data.wait_for_resume()
        finally:
            watchdog.blocker -= 1
            if watchdog.blocker == 0:
                watchdog.register_activity()
                watchdog.can_timeout.set()

    async def handle_connection(self, connection: Connection) -> None:
        if connection is not self.client and _can_relay(self, connection):
            client_io, server_io = self.transports[self.client], self.transports[connection]
            client = self.client

            def ended(received: int) -> None:
                setattr(client, BYTES, received)

            Relay(client_io.reader, client_io.writer.transport,  # type: ignore[union-attr,arg-type]
                  server_io.reader, server_io.writer.transport,  # type: ignore[union-attr,arg-type]
                  self.timeout_watchdog, ended).start()
        await super().handle_connection(connection)


def _no_type_check(self: Any) -> None:
    """In place of ``MessageData.__post_init__``: checked every field's type on every request
    and response (5 % of a request's time in the profile)."""


def install() -> None:
    """Make mitmproxy's servers use :class:`KalkanConnectionHandler` (process-wide)."""
    mode_servers.ProxyConnectionHandler = KalkanConnectionHandler  # type: ignore[misc]
    mitmproxy_http.MessageData.__post_init__ = _no_type_check  # type: ignore[method-assign]
