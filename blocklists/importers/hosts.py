"""hosts files: ``0.0.0.0 ads.example.com tracker.example.net  # comment``.

Only lines that send names to nowhere (``0.0.0.0``, ``::``, ``127.0.0.1``, ``::1``) are
blocks. A line with a real address redirects the names (``216.239.38.120 www.google.com``
enforces safe search): importing it would put Google in the list's category, so it is
skipped. The usual header (``127.0.0.1 localhost``, ``255.255.255.255 broadcasthost``, ...)
is skipped as boilerplate. Skips are counted per name. An IP literal in the name column
(``0.0.0.0 101.33.243.139``) is kept as an IP entry, as in every other list.
"""

from __future__ import annotations

import ipaddress
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

BOILERPLATE = frozenset({
    "localhost", "localhost.localdomain", "local", "broadcasthost", "localhost4",
    "localhost4.localdomain4", "localhost6", "localhost6.localdomain6", "ip6-localhost",
    "ip6-loopback", "ip6-localnet", "ip6-mcastprefix", "ip6-allnodes", "ip6-allrouters",
    "ip6-allhosts", "0.0.0.0", "127.0.0.1", "::", "::1",
})
BOILERPLATE_REASON = "hosts boilerplate"
REDIRECT_REASON = "hosts redirect (not a block address)"


def read_hosts(source: Source, *, category: str, report: ImportReport) -> Iterator[ListEntry]:
    """Entries of a hosts file, all in ``category``: one per blocked name."""
    check_category(category)
    check_source(source)
    return _read(source, category, report)


def _read(source: Source, category: str, report: ImportReport) -> Iterator[ListEntry]:
    first_seen = FirstSeen(report)
    with open_source(source, report) as (stream, name):
        for number, text in content_lines(stream, name, report):
            address, *names = text.split()
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                report.reject(name, number, text, f"{address!r} is not an address (a hosts "
                              "line is an address, then names)")
                continue
            if not names:
                report.reject(name, number, text, "an address without any names")
                continue
            blocks = ip.is_unspecified or ip.is_loopback
            for host in names:
                if host.lower() in BOILERPLATE:
                    report.skip(BOILERPLATE_REASON)
                    continue
                if not blocks:
                    report.skip(REDIRECT_REASON)
                    continue
                try:
                    kind, normal = parse_host(host)
                except InvalidDomain as exc:
                    report.reject(name, number, text, exc.message)
                    continue
                entry = ListEntry(normal, category, kind)
                if first_seen(entry):
                    yield entry

