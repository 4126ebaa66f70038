"""Addresses of the sites the proxy connects to by name, kept for a short while.

In explicit mode mitmproxy connects to the name of the CONNECT line or the URL, and asyncio
asks the system resolver (``getaddrinfo``: /etc/hosts, then DNS) on every new server
connection; in the profile that was a tenth of the work of a new HTTPS connection. squid keeps
its own cache of addresses (ipcache); this is kalkan's: one lookup per name per ``TTL``
seconds, the addresses tried in the resolver's order as asyncio does. Transparent mode
connects to addresses and never gets here.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from policies.domain import is_ip_literal

TTL = 30.0  # seconds: well under usual DNS TTLs, long enough to save most lookups
MAX_NAMES = 4096


class ServerNames:
    def __init__(self, ttl: float = TTL, max_names: int = MAX_NAMES) -> None:
        self.ttl = ttl
        self.max_names = max_names
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}

    async def addresses(self, host: str, port: int) -> tuple[str, ...]:
        now = time.monotonic()
        hit = self._cache.get(host)
        if hit is not None and hit[0] > now:
            return hit[1]
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
        found = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        if len(self._cache) >= self.max_names:
            self._cache.clear()  # rare: a fresh start costs one lookup per name
        self._cache[host] = (now + self.ttl, found)
        return found

    def forget(self, host: str) -> None:
        self._cache.pop(host, None)

    async def open_connection(self, host: str, port: int, **kwargs: Any
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``asyncio.open_connection`` with the cached addresses of ``host``."""
        if is_ip_literal(host):
            return await asyncio.open_connection(host, port, **kwargs)
        error: OSError | None = None
        for address in await self.addresses(host, port):
            try:
                return await asyncio.open_connection(address, port, **kwargs)
            except OSError as exc:
                error = exc
        self.forget(host)  # none answered: ask again next time
        raise error or OSError(f"no address for {host}")


def install(names: ServerNames | None = None) -> ServerNames:
    """Make mitmproxy's server connections go through ``names`` (process-wide): its module gets
    an asyncio whose ``open_connection`` uses the cache, as ``master.share_ports`` does for
    ``start_server``."""
    from mitmproxy.proxy import server

    names = names or ServerNames()

    class _AsyncioWithNames:
        def __getattr__(self, name: str) -> Any:
            return getattr(asyncio, name)

        open_connection = staticmethod(names.open_connection)

    server.asyncio = _AsyncioWithNames()  # type: ignore[assignment]
    return names
