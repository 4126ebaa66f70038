"""systemd's readiness and watchdog protocol: one datagram to $NOTIFY_SOCKET, no library.

A unit with ``Type=notify`` counts as started only when the service says ``READY=1`` (so
``kalkan.target`` and ``network-online.target`` wait until DNS really answers), and with
``WatchdogSec=`` systemd restarts a service that stops saying ``WATCHDOG=1``. Outside
systemd ($NOTIFY_SOCKET unset) every function here does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to the service manager; False outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket: its name starts with a NUL byte
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:  # systemd went away or the socket is not ours: never fatal
        log.debug("sd_notify %s failed: %s", state, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between two pings (half of WatchdogSec=), None if no watchdog is asked for."""
    # WATCHDOG_PID is not checked: with proxy.workers > 1 the forked workers are the ones
    # serving, and their pings count (the DNS and proxy units say NotifyAccess=all).
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    try:
        return max(int(usec) / 2_000_000, 0.5)
    except ValueError:
        return None


def ready(status: str | None = None) -> None:
    """Tell systemd the service is up (listening, policy loaded)."""
    notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping() -> None:
    notify("STOPPING=1")


async def watchdog_pings() -> None:
    """Ping from the event loop itself: a loop that hangs stops the pings and gets restarted."""
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def start_watchdog_thread() -> threading.Thread | None:
    """Ping from a daemon thread, for processes without an event loop (admin, worker)."""
    interval = watchdog_interval()
    if interval is None:
        return None
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
            notify("WATCHDOG=1")

    notify("WATCHDOG=1")
    thread = threading.Thread(target=run, name="kalkan-watchdog", daemon=True)
    thread.start()
    return thread
