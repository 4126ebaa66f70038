"""Where the leases are, and reading them again only when a file changed.

A source is a format and a path (a file, or for networkd a directory of files). With no
sources configured, the usual places of dnsmasq, ISC Kea and systemd-networkd are looked at
on every round, so a DHCP server installed after kalkan is found without a restart.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gateway.identity import dnsmasq, kea, networkd
from gateway.identity.leases import Lease, LeaseFile
from gateway.identity.neighbours import Neighbours, read_neighbours

log = logging.getLogger(__name__)

Parser = Callable[[str, float], LeaseFile]
PARSERS: dict[str, Parser] = {
    "dnsmasq": dnsmasq.parse_dnsmasq_leases,
    "kea": kea.parse_kea_leases,
    "networkd": networkd.parse_networkd_leases,
}
AUTO_SOURCES: tuple[tuple[str, str], ...] = (
    ("dnsmasq", dnsmasq.DEFAULT_PATH),
    *(("kea", path) for path in kea.DEFAULT_PATHS),
    *(("networkd", path) for path in networkd.DEFAULT_DIRS),
)
MAX_LEASE_FILE = 32 << 20  # a lease file of a school is kilobytes; more is not a lease file


def parse_sources(items: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``["dnsmasq:/path", …]`` (validated by the config) as (format, path) pairs."""
    return tuple((kind, path) for kind, _sep, path in (i.partition(":") for i in items))


@dataclass(frozen=True, slots=True)
class AddressBook:
    """Everything the router knows about who holds which address, at one moment."""

    macs: dict[str, str]  # IP → MAC: what the engine needs
    leases: tuple[Lease, ...]  # for the devices-seen table: hostnames come from here
    skipped: int  # lines or entries that did not read, over all sources


@dataclass
class LeaseReader:
    """Reads every source, re-parsing a file only when its mtime or size moved."""

    sources: tuple[tuple[str, str], ...] = ()  # empty: AUTO_SOURCES that exist
    neighbours: bool = True
    read_neighbour_table: Callable[[], Neighbours] = read_neighbours
    _cache: dict[str, tuple[tuple[int, int], LeaseFile]] = field(
        default_factory=dict, init=False, repr=False)  # path → ((mtime, size), parsed)

    def read(self, now: float | None = None) -> AddressBook:
        now = time.time() if now is None else now
        leases: list[Lease] = []
        skipped = 0
        seen_paths = set()
        for kind, path in self.sources or AUTO_SOURCES:
            for file in _files_of(kind, path):
                seen_paths.add(file)
                parsed = self._parse(kind, file, now)
                skipped += parsed.skipped
                leases.extend(lease for lease in parsed.leases
                              if lease.expires is None or lease.expires >= now)
        for gone in self._cache.keys() - seen_paths:
            del self._cache[gone]
        macs = {lease.ip: lease.mac for lease in leases}
        if self.neighbours:
            table = self.read_neighbour_table()
            skipped += table.skipped
            macs.update(table.macs)  # the neighbour table is what the link shows right now
        return AddressBook(macs, tuple(leases), skipped)

    def _parse(self, kind: str, file: str, now: float) -> LeaseFile:
        try:
            stat = os.stat(file)
        except OSError:
            return LeaseFile()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(file)
        if cached is not None and cached[0] == key:
            return cached[1]
        if stat.st_size > MAX_LEASE_FILE:
            log.warning("%s is %d MB: not read as a lease file", file, stat.st_size >> 20)
            parsed = LeaseFile(skipped=1)
        else:
            try:
                text = Path(file).read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                log.warning("cannot read the lease file %s: %s", file, exc)
                return LeaseFile()
            parsed = PARSERS[kind](text, now)
            if parsed.skipped:
                log.warning("%s: %d unreadable lines skipped", file, parsed.skipped)
        self._cache[file] = (key, parsed)
        return parsed


def _files_of(kind: str, path: str) -> list[str]:
    """The file itself, or every file in it for a directory (networkd: one per interface)."""
    if os.path.isdir(path):
        try:
            return sorted(str(p) for p in Path(path).iterdir() if p.is_file())
        except OSError:
            return []
    return [path] if os.path.exists(path) else []
