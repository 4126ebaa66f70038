"""Plain lists: one host name a line, ``#`` comments (whole-line or trailing), ``*.`` prefixes.

The whole list belongs to one kalkan category, e.g. ``doh`` for a list of DoH servers.
"""

from __future__ import annotations

from collections.abc import Iterator

from blocklists.entries import ImportReport, ListEntry
from blocklists.importers.common import (
    FirstSeen,
    Source,
    check_category,
    check_source,
    content_lines,
    open_source,
    parse_host,
)
from policies.domain import InvalidDomain


def read_plain(source: Source, *, category: str, report: ImportReport) -> Iterator[ListEntry]:
    """Entries of a one-name-a-line list, all in ``category``. Host names become domain
    entries and IP literals IP entries; anything else is counted as invalid."""
    check_category(category)
    check_source(source)
    return _read(source, category, report)


def _read(source: Source, category: str, report: ImportReport) -> Iterator[ListEntry]:
    first_seen = FirstSeen(report)
    with open_source(source, report) as (stream, name):
        for number, text in content_lines(stream, name, report):
            if len(text.split()) > 1:
                report.reject(name, number, text, "more than one name on the line")
                continue
            try:
                kind, host = parse_host(text)
            except InvalidDomain as exc:
                report.reject(name, number, text, exc.message)
                continue
            entry = ListEntry(host, category, kind)
            if first_seen(entry):
                yield entry
