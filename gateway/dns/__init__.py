"""The DNS resolver: the first line of enforcement, as fast as dnsmasq.

A query's path is one file, :mod:`gateway.dns.chain`: event tap → access → canary → policy
→ safe search → cache → upstream, one module per link. :mod:`gateway.dns.server` owns the
sockets, :mod:`gateway.dns.wire` the bytes, :mod:`gateway.dns.service` the processes.
``kalkan dns`` runs :func:`serve_dns`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.dns.service import DnsService, serve_dns

__all__ = ["DnsService", "serve_dns"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `gateway.dns.wire` can be imported without the engine and the database.
    if name in __all__:
        from gateway.dns import service

        return getattr(service, name)
    raise AttributeError(name)
