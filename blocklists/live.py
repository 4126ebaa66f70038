"""The index a running process answers from, reopened when ``kalkan blocklists update`` swaps
the file underneath it (no restart: the DNS and proxy processes call :meth:`maybe_reload`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from blocklists.errors import BlocklistError
from blocklists.index import DomainIndex, open_index
from policies.lookup import CategoryMatch

log = logging.getLogger(__name__)


class LiveIndex:
    """Implements the engine's ``CategoryLookup`` over whatever index file ``path`` holds now.

    A missing or broken file answers nothing and is logged; a broken new build is refused and
    the index already open stays in service.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._index: DomainIndex | None = None
        self.maybe_reload()

    @property
    def index(self) -> DomainIndex | None:
        return self._index

    def lookup(self, domain: str, path: str | None = None) -> tuple[CategoryMatch, ...]:
        index = self._index
        return index.lookup(domain, path) if index is not None else ()

    def maybe_reload(self) -> bool:
        """Open the file again if it changed on disk; True when a new index is in service."""
        current = self._index
        if current is not None and not current.changed_on_disk():
            return False
        if not self.path.exists():
            return False
        try:
            fresh = open_index(self.path)
        except BlocklistError as exc:
            log.error("blocklist index %s not usable, keeping the one in service: %s",
                      self.path, exc)
            return False
        self._index = fresh  # readers holding the old one finish with it; it unmaps when freed
        log.info("blocklist index %s opened: %s names", self.path, fresh.stats.domains)
        return True
