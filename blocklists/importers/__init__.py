"""Importers: the list formats schools use, each turned into a stream of :class:`ListEntry`.

Every importer is a function ``read_<format>(source, *, category or mapping, report)`` that
returns an iterator. ``source`` is a path or an open stream; lines are read one at a time, so
a list of millions of names never sits in memory. Nothing about a single line is fatal: each
line is accepted, skipped (with the reason) or invalid (with the file, line and why) in the
:class:`ImportReport`. A source that cannot be read at all (missing, truncated, corrupt)
raises :class:`~blocklists.errors.BlocklistError`; the caller then keeps the previous index.

Formats with their own categories (UT1, CSV) map them through a
:class:`~blocklists.mapping.CategoryMapping`; the others belong to one kalkan ``category``.
"""

from __future__ import annotations

from collections.abc import Iterator

from blocklists.entries import ImportReport, ListEntry
from blocklists.errors import BlocklistError
from blocklists.importers.adblock import read_adblock
from blocklists.importers.common import Source
from blocklists.importers.csv_list import read_csv
from blocklists.importers.hosts import read_hosts
from blocklists.importers.plain import read_plain
from blocklists.importers.ut1 import read_ut1
from blocklists.mapping import CategoryMapping

MAPPED_FORMATS = ("ut1", "csv")  # categories come from the list, through a mapping
SINGLE_CATEGORY_FORMATS = ("hosts", "adblock", "plain")  # the whole list is one category
FORMATS = MAPPED_FORMATS + SINGLE_CATEGORY_FORMATS

__all__ = [
    "FORMATS",
    "MAPPED_FORMATS",
    "SINGLE_CATEGORY_FORMATS",
    "Source",
    "read_adblock",
    "read_csv",
    "read_hosts",
    "read_list",
    "read_plain",
    "read_ut1",
]


def read_list(fmt: str, source: Source, *, report: ImportReport, category: str | None = None,
              mapping: CategoryMapping | None = None) -> Iterator[ListEntry]:
    """Dispatch on a format name (what ``kalkan blocklists add --format`` takes).

    ``category`` is required for hosts, adblock and plain lists and refused for the others;
    ``mapping`` is optional for UT1 (default: the packaged one) and CSV (default: kalkan ids).
    """
    if fmt in SINGLE_CATEGORY_FORMATS:
        if category is None or mapping is not None:
            raise BlocklistError(f"a {fmt} list belongs to one category: give a category, "
                                 "not a mapping")
        reader = {"hosts": read_hosts, "adblock": read_adblock, "plain": read_plain}[fmt]
        return reader(source, category=category, report=report)
    if fmt in MAPPED_FORMATS:
        if category is not None:
            raise BlocklistError(f"a {fmt} list names its own categories: give a mapping, "
                                 "not a category")
        mapped = read_ut1 if fmt == "ut1" else read_csv
        return mapped(source, mapping=mapping, report=report)
    raise BlocklistError(f"unknown list format {fmt!r}", hint=f"use one of: {', '.join(FORMATS)}")
