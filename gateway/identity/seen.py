"""Recording the devices seen on the network, in batches, for the admin's devices page.

One recorder per installation (``kalkan run`` starts it beside the alert detector): it reads
the same leases and neighbour table as the gateway processes every ``identity.record_interval``
seconds and writes what is new or moved in one transaction. A device that only shows in the
neighbour table and lies in no room (the uplink's own router, say) is not recorded: it is not
a school computer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import IdentityConfig
from gateway.identity.models import SeenDevice
from gateway.identity.sources import AddressBook, LeaseReader
from gateway.identity.watcher import reader_for
from gateway.polling import PollingThread
from policies.database import utcnow
from policies.engine import Engine

# last_seen alone is rewritten at most this often: a school of 500 PCs every 30 s would
# otherwise be 1,000 writes a minute that tell nobody anything.
LAST_SEEN_STEP = dt.timedelta(minutes=5)
CHUNK = 500  # MACs per IN (...) query: well below every database's parameter limit


@dataclass(frozen=True, slots=True)
class Sighting:
    """One MAC as the router sees it now."""

    mac: str
    ipv4: str | None
    ipv6: str | None
    hostname: str | None
    room: str | None


def sightings(book: AddressBook, room_of: Callable[[str], str | None]) -> list[Sighting]:
    """Per MAC: its addresses (a global IPv6 address before a link-local one), the hostname
    from its lease, and the room of its network."""
    v4: dict[str, str] = {}
    v6: dict[str, str] = {}
    hostnames: dict[str, str] = {}
    leased: set[str] = set()
    for lease in book.leases:
        leased.add(lease.mac)
        if lease.hostname:
            hostnames[lease.mac] = lease.hostname
    for ip, mac in sorted(book.macs.items()):
        if ":" not in ip:
            v4[mac] = ip
        elif mac not in v6 or (v6[mac].startswith("fe80:") and not ip.startswith("fe80:")):
            v6[mac] = ip
    out = []
    for mac in sorted(v4.keys() | v6.keys()):
        ipv4, ipv6 = v4.get(mac), v6.get(mac)
        room = (room_of(ipv4) if ipv4 else None) or (room_of(ipv6) if ipv6 else None)
        if room is None and mac not in leased:
            continue
        hostname = hostnames.get(mac)  # the client's own choice: any text, any length
        out.append(Sighting(mac, ipv4, ipv6, hostname[:253] if hostname else None, room))
    return out


def record_sightings(db: Session, seen: list[Sighting], now: dt.datetime | None = None) -> int:
    """Insert new MACs and update moved ones in one transaction; the number of rows written."""
    now = now or utcnow()
    written = 0
    for start in range(0, len(seen), CHUNK):
        batch = {s.mac: s for s in seen[start:start + CHUNK]}
        rows = {row.mac: row for row in db.scalars(
            select(SeenDevice).where(SeenDevice.mac.in_(batch)))}
        for mac, s in batch.items():
            row = rows.get(mac)
            if row is None:
                db.add(SeenDevice(mac=mac, ipv4=s.ipv4, ipv6=s.ipv6, hostname=s.hostname,
                                  room_id=s.room, first_seen=now, last_seen=now))
                written += 1
                continue
            moved = False
            for attr, value in (("ipv4", s.ipv4), ("ipv6", s.ipv6), ("hostname", s.hostname),
                                ("room_id", s.room)):
                if value is not None and getattr(row, attr) != value:
                    setattr(row, attr, value)
                    moved = True
            if moved or now - row.last_seen >= LAST_SEEN_STEP:
                row.last_seen = now
                written += 1
    db.commit()
    return written


def room_of_network(engine: Engine) -> Callable[[str], str | None]:
    """The room whose network holds an address, by the engine's current snapshot."""

    def room_of(ip: str) -> str | None:
        return engine.snapshot.room_of(ipaddress.ip_address(ip))

    return room_of


def start_recorder(sessions: sessionmaker[Session], engine: Engine,
                   config: IdentityConfig) -> SeenRecorder | None:
    """Record devices seen, once per installation; None when ``identity.enabled`` is false."""
    if not config.enabled:
        return None
    return SeenRecorder(sessions, reader_for(config), room_of_network(engine),
                        config.record_interval).start()


class SeenRecorder(PollingThread):
    thread_name = "kalkan-devices-seen"

    def __init__(self, sessions: sessionmaker[Session], reader: LeaseReader,
                 room_of: Callable[[str], str | None], interval: float = 30.0) -> None:
        super().__init__()
        self.sessions, self.reader, self.room_of = sessions, reader, room_of
        self.interval = interval

    def run_round(self) -> None:
        seen = sightings(self.reader.read(), self.room_of)
        if seen:
            with self.sessions() as db:
                record_sightings(db, seen)
