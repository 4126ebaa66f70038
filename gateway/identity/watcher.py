"""Keeps one engine's IP → MAC map current: every gateway process runs its own watcher.

Why each process reads for itself rather than one process writing a shared file: there is no
writer whose death would leave every other process with a stale map, and the cost is small
(a ``stat`` of a few lease files, a re-parse only when one changed, and one ``ip -j neigh``
run, a few milliseconds every ``identity.poll_interval`` seconds). The query path never does
any of it: it reads the map the last round put into the snapshot.
"""

from __future__ import annotations

import logging

from gateway.config import IdentityConfig
from gateway.identity.sources import AddressBook, LeaseReader, parse_sources
from gateway.polling import PollingThread
from policies.engine import Engine

log = logging.getLogger(__name__)


def reader_for(config: IdentityConfig) -> LeaseReader:
    return LeaseReader(parse_sources(config.leases), neighbours=config.neighbours)


class AddressWatcher(PollingThread):
    """Reads the leases and the neighbour table and gives the engine the new map."""

    thread_name = "kalkan-identity"

    def __init__(self, engine: Engine, reader: LeaseReader, interval: float = 2.0) -> None:
        super().__init__()
        self.engine = engine
        self.reader = reader
        self.interval = interval
        self.last: AddressBook | None = None

    def run_round(self) -> None:
        book = self.reader.read()
        self.last = book
        if self.engine.set_addresses(book.macs):
            log.debug("address map: %d addresses of %d devices", len(book.macs),
                      len(set(book.macs.values())))


def start_address_watcher(engine: Engine, config: IdentityConfig) -> AddressWatcher | None:
    """Start following addresses for ``engine``, unless ``identity.enabled`` is false.

    The first round runs before this returns, so a process knows its devices before it
    answers its first query.
    """
    if not config.enabled:
        return None
    watcher = AddressWatcher(engine, reader_for(config), config.poll_interval)
    try:
        watcher.run_round()
    except Exception:  # the watcher's own rounds will try again
        log.exception("could not read the leases and the neighbour table")
    return watcher.start()
