"""The kernel's neighbour table (ARP for IPv4, NDP for IPv6), read with ``ip -j neigh show``.

Leases name the IPv4 address and perhaps one DHCPv6 address; a PC that uses SLAAC privacy
addresses makes up new ones by itself every day or so, and only the neighbour table shows
which MAC is behind each: an entry appears as soon as the router talks to the address.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass, field

from gateway.identity.leases import canonical_ip, normalise_mac

log = logging.getLogger(__name__)

# Entries in these states have no usable link-layer address (or a wrong one).
UNUSABLE = frozenset({"FAILED", "INCOMPLETE", "NONE"})


@dataclass(slots=True)
class Neighbours:
    """IP → MAC from the neighbour table, and the entries that did not read."""

    macs: dict[str, str] = field(default_factory=dict)
    skipped: int = 0


def parse_neighbours(text: str) -> Neighbours:
    """The reachable (or recently reachable) entries of ``ip -j neigh show`` output."""
    out = Neighbours()
    try:
        entries = json.loads(text) if text.strip() else []
    except ValueError:
        out.skipped += 1
        return out
    if not isinstance(entries, list):
        out.skipped += 1
        return out
    for entry in entries:
        if not isinstance(entry, dict):
            out.skipped += 1
            continue
        states = entry.get("state") or []
        if isinstance(states, str):
            states = [states]
        if "lladdr" not in entry or UNUSABLE.intersection(states):
            continue  # nobody answered there: not an error, just no device
        ip = canonical_ip(str(entry.get("dst", "")))
        mac = normalise_mac(str(entry["lladdr"]))
        if ip is None or mac is None:
            out.skipped += 1
            continue
        out.macs[ip] = mac
    return out


def read_neighbours(command: tuple[str, ...] = ("ip", "-j", "neigh", "show"),
                    timeout: float = 2.0) -> Neighbours:
    """Run ``ip -j neigh show`` (never on the query path: the watcher calls it every few
    seconds). A missing ``ip`` or a failed run reads as an empty table, logged."""
    if shutil.which(command[0]) is None:
        log.warning("%s not found: devices are known by their leases only", command[0])
        return Neighbours()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not read the neighbour table: %s", exc)
        return Neighbours()
    if done.returncode != 0:
        log.warning("`%s` failed: %s", " ".join(command), done.stderr.strip())
        return Neighbours()
    return parse_neighbours(done.stdout)
