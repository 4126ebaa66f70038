"""CSV lists: ``domain,category`` a row, as spreadsheets export them.

The first row is a header when its first cell cannot be a host name (``domain,category``).
Excel set to Russian or Kazakh writes ``;`` between cells, so the delimiter is taken from the
first row (``,`` else ``;`` else tab). Cells may be quoted; columns after the second are
notes and are ignored. The domain cell may carry a path (``lib.kg/books``: a URL entry).
Categories go through a :class:`CategoryMapping`, or are kalkan ids when there is none; a
row whose category is neither is invalid, with the reason.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from blocklists.entries import ImportReport, ListEntry
from blocklists.importers.common import (
    FirstSeen,
    Source,
    check_source,
    iter_lines,
    open_source,
    parse_host,
    parse_url,
)
from blocklists.mapping import DEFAULT_CATEGORY_IDS, CategoryMapping
from policies.domain import InvalidDomain


def read_csv(source: Source, *, mapping: CategoryMapping | None = None,
             report: ImportReport) -> Iterator[ListEntry]:
    """Entries of a ``domain,category`` CSV file, categories mapped through ``mapping``
    (``None``: the cells are kalkan ids; use :meth:`CategoryMapping.identity` for a policy's
    own categories)."""
    check_source(source)
    return _read(source, mapping, report)


def _read(source: Source, mapping: CategoryMapping | None,
          report: ImportReport) -> Iterator[ListEntry]:
    first_seen = FirstSeen(report)
    delimiter: str | None = None
    with open_source(source, report) as (stream, name):
        for number, text in iter_lines(stream, name, report):
            if not text:
                report.skip("blank")
                continue
            if text[0] == "#":
                report.skip("comment")
                continue
            first = delimiter is None
            if delimiter is None:
                delimiter = next((d for d in ",;\t" if d in text), ",")
            try:
                row = [cell.strip() for cell in next(csv.reader([text], delimiter=delimiter,
                                                                strict=True))]
            except csv.Error as exc:
                report.reject(name, number, text, f"not a CSV row: {exc}")
                continue
            if first and _is_header(row):
                report.skip("header")
                continue
            if len(row) < 2 or not row[0] or not row[1]:
                report.reject(name, number, text, "expected a domain and a category")
                continue
            cell, source_category = row[0], row[1]
            if mapping is None:
                category = source_category.lower()
                if category not in DEFAULT_CATEGORY_IDS:
                    report.reject(name, number, text,
                                  f"unknown category {source_category!r} (not a kalkan "
                                  "category; give the import a mapping)")
                    continue
            elif source_category not in mapping:
                report.reject(name, number, text, f"unknown category {source_category!r} "
                              f"(not in the mapping {mapping.name})")
                continue
            else:
                target = mapping[source_category]
                if target is None:
                    report.skip(f"left out by the mapping ({source_category})")
                    continue
                category = target
            try:
                if "/" in cell:
                    kind, host, path = parse_url(cell)
                else:
                    (kind, host), path = parse_host(cell), None
            except InvalidDomain as exc:
                report.reject(name, number, text, exc.message)
                continue
            entry = ListEntry(host, category, kind, path)
            if first_seen(entry):
                yield entry


def _is_header(row: list[str]) -> bool:
    # Every host name a list can use has a dot (or, for IPv6, a colon); "domain" has neither.
    return bool(row) and "." not in row[0] and ":" not in row[0]
