"""Measuring the uplink: the kernel's byte counters of its interface, and a speed check.

The counters cost nothing and see every byte the router relays (passthrough HTTPS included,
which the proxy never looks into); the speed check downloads a configured URL now and then
and gives Mbit/s to compare with the contracted tariff.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SYS_NET = Path("/sys/class/net")
PROC_ROUTE = Path("/proc/net/route")


def default_route_interface(route_table: Path = PROC_ROUTE) -> str | None:
    """The interface of the IPv4 default route (destination 00000000), or None."""
    try:
        lines = route_table.read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000":
            return fields[0]
    return None


@dataclass(frozen=True, slots=True)
class InterfaceBytes:
    rx: int
    tx: int


def read_interface_bytes(interface: str, sys_net: Path = SYS_NET) -> InterfaceBytes | None:
    """Bytes received and sent by ``interface`` since boot; None if it does not exist."""
    stats = sys_net / interface / "statistics"
    try:
        return InterfaceBytes(int((stats / "rx_bytes").read_text()),
                              int((stats / "tx_bytes").read_text()))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class SpeedCheck:
    """One download of the speed-check URL: Mbit/s, or the error that stopped it."""

    mbit: float | None
    bytes: int
    seconds: float
    error: str | None = None

    @property
    def reachable(self) -> bool:
        return self.error is None


def measure_download(url: str, *, max_bytes: int, timeout: float = 20.0) -> SpeedCheck:
    """Download ``url`` (at most ``max_bytes``) and compute the speed from the body's bytes
    and the time from the first byte of the answer to the last."""
    started = time.monotonic()
    received = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "kalkan-speed-check",
                                                       "Cache-Control": "no-cache"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            first = time.monotonic()
            while received < max_bytes:
                chunk = response.read(min(65536, max_bytes - received))
                if not chunk:
                    break
                received += len(chunk)
                if time.monotonic() - started > timeout:
                    break
    except (OSError, urllib.error.URLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return SpeedCheck(None, received, time.monotonic() - started, f"{reason}")
    seconds = max(time.monotonic() - first, 1e-6)
    if received == 0:
        return SpeedCheck(None, 0, seconds, "the URL gave an empty answer")
    return SpeedCheck(received * 8 / seconds / 1e6, received, seconds)
