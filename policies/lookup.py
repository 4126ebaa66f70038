"""The one question the engine asks of category lists: which categories does this host have?

The blocklist index (``blocklists/``) implements :class:`CategoryLookup` over its memory-mapped
file; :class:`InMemoryCategoryIndex` implements it over the policy's own ``category_sites``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol


class CategoryMatch(NamedTuple):
    category: str
    entry: str  # the list entry that matched: a parent domain of the host, maybe with a path
    source: str  # which list said so: "policy", "ut1", …
    depth: int  # labels in the matched domain (more is more specific); +1000 for a URL entry


class CategoryLookup(Protocol):
    def lookup(self, domain: str, path: str | None = None) -> tuple[CategoryMatch, ...]:
        """Every match for ``domain`` or a parent of it, most specific first."""
        ...


URL_DEPTH = 1000  # a URL entry is more specific than any bare domain


class InMemoryCategoryIndex:
    """Dictionaries of domain → categories; enough for the policy's own lists."""

    def __init__(self, entries: Iterable[tuple[str, str, str]]) -> None:
        """``entries`` are (category, entry, source); an entry is ``domain`` or ``domain/path``."""
        domains: dict[str, list[CategoryMatch]] = {}
        urls: dict[str, list[tuple[str, CategoryMatch]]] = {}
        for category, entry, source in entries:
            domain, slash, path = entry.partition("/")
            depth = domain.count(".") + 1
            if slash:
                match = CategoryMatch(category, entry, source, URL_DEPTH + depth)
                urls.setdefault(domain, []).append(("/" + path, match))
            else:
                domains.setdefault(domain, []).append(CategoryMatch(category, entry, source, depth))
        self._domains = {d: tuple(m) for d, m in domains.items()}
        self._urls = {d: tuple(sorted(m, key=lambda pm: -len(pm[0]))) for d, m in urls.items()}
        self.size = sum(map(len, self._domains.values())) + sum(map(len, self._urls.values()))

    def lookup(self, domain: str, path: str | None = None) -> tuple[CategoryMatch, ...]:
        found: tuple[CategoryMatch, ...] = ()
        domains, urls = self._domains, self._urls
        name = domain
        while True:
            if path is not None and name in urls:
                found += tuple(m for prefix, m in urls[name] if path.startswith(prefix))
            hit = domains.get(name)
            if hit is not None:
                found += hit  # walking up from the host, so already most specific first
            dot = name.find(".")
            if dot < 0:
                return found
            name = name[dot + 1:]
