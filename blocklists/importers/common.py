"""What every importer shares: opening a source, reading it line by line, turning a host name
into an entry, and dropping duplicates.

Lists are large (a UT1 category has ~220,000 lines, ``adult`` upstream 4.6 M), so sources are
streamed as bytes, one line at a time, and decoded per line: a line with undecodable bytes is
counted as invalid instead of spoiling the rest of the file.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import ipaddress
import lzma
import os
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from blocklists.entries import EntryKind, ImportReport, ListEntry
from blocklists.errors import BlocklistError
from policies.domain import InvalidDomain, normalise_domain

Source = str | os.PathLike[str] | IO[bytes] | IO[str]
"""A path (file or, for UT1, directory or tarball) or an open binary or text stream."""

# Damage found while reading a compressed download: the list as a whole is unusable.
BROKEN_ARCHIVE = (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError, tarfile.TarError,
                  OSError)

_CATEGORY_ID = re.compile(r"[a-z][a-z0-9_]*")

# The shape of almost every line in real lists; anything else takes the careful path through
# normalise_domain (IDN, IP literals, errors). At least two labels: see parse_host.
_PLAIN_NAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})+")


def check_category(category: str) -> str:
    """Refuse a category argument that cannot be a kalkan id (a typo in a source definition).

    Whether the id exists is the caller's question: a policy may define its own categories.
    """
    if not isinstance(category, str) or not _CATEGORY_ID.fullmatch(category):
        raise BlocklistError(f"{category!r} is not a kalkan category id",
                             hint="ids are lower-case words such as adult, proxy_vpn, doh")
    return category


def check_source(source: Source) -> None:
    """Fail before reading starts when a path names nothing, so the error is about the source
    and not the first line."""
    if isinstance(source, str | os.PathLike) and not os.path.exists(source):
        raise BlocklistError("no such file or directory", file=os.fspath(source),
                             hint="check the path in the source definition")


def source_name(source: Source, report: ImportReport) -> str:
    """The name that reports use for ``source``: its path, a stream's name, or the report's."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else report.source


@contextlib.contextmanager
def open_source(source: Source, report: ImportReport) -> Iterator[tuple[IO[Any], str]]:
    """Yield ``(stream, name)``; paths ending in .gz/.bz2/.xz are decompressed on the fly.

    A stream the caller passed stays open: its owner closes it.
    """
    name = source_name(source, report)
    if not isinstance(source, str | os.PathLike):
        yield source, name
        return
    path = Path(source)
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}.get(path.suffix, open)
    try:
        stream = opener(path, "rb")
    except OSError as exc:
        raise BlocklistError(f"cannot open it: {exc.strerror or exc}", file=name) from None
    with stream:
        yield stream, name


def broken(name: str, exc: BaseException, line: int | None = None) -> BlocklistError:
    """The error for a list that stops making sense half-way (truncated or corrupt download)."""
    return BlocklistError(f"the file is truncated or corrupt: {exc}", file=name, line=line,
                          hint="download it again; the index built from the previous copy "
                               "stays in service")


def iter_lines(stream: IO[Any], name: str, report: ImportReport,
               counts: ImportReport | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, stripped text)`` for each line that decodes as UTF-8.

    Lines with undecodable bytes are rejected here (shown with U+FFFD in the example), so an
    importer only sees text. ``counts`` receives the line counts and rejects instead of
    ``report`` when a file is read a second time (see the UT1 importer's aliases).
    """
    counts = counts if counts is not None else report
    number = 0
    try:
        for number, raw in enumerate(stream, 1):
            counts.lines += 1
            if isinstance(raw, bytes):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    counts.reject(name, number, raw.decode("utf-8", "replace").strip(),
                                  "not valid UTF-8 (is the file in another encoding?)")
                    continue
            else:
                text = raw
            if number == 1:
                text = text.lstrip("\ufeff")  # a byte-order mark, as Windows editors write
            yield number, text.strip()
    except BROKEN_ARCHIVE as exc:
        raise broken(name, exc, number + 1) from exc


def content_lines(stream: IO[Any], name: str, report: ImportReport
                  ) -> Iterator[tuple[int, str]]:
    """Like :func:`iter_lines`, for formats whose comments start with ``#`` anywhere on a
    line (hosts files, plain lists): comments and blank lines are counted as skipped."""
    for number, text in iter_lines(stream, name, report):
        if "#" in text:
            text = text.split("#", 1)[0].rstrip()
            if not text:
                report.skip("comment")
                continue
        if not text:
            report.skip("blank")
            continue
        yield number, text


def parse_host(text: str) -> tuple[EntryKind, str]:
    """Turn a host name or IP literal from a list into ``(kind, normalised name)``.

    A leading ``*.`` or ``.`` is dropped: kalkan matches every entry as a suffix, which is
    what those prefixes ask for. ``www.`` is kept (``www.x.com`` says nothing about ``x.com``).
    Raises :class:`InvalidDomain` with the reason for anything that is not a usable name.
    """
    name = text
    if name.startswith("*."):
        name = name[2:]
    elif name.startswith("."):
        name = name[1:]
    lowered = name.lower()
    if (_PLAIN_NAME.fullmatch(lowered) and len(lowered) <= 253
            and not lowered[-1].isdigit()):
        return EntryKind.DOMAIN, lowered
    name = normalise_domain(name)
    try:
        return EntryKind.IP, str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if "." not in name:
        # One label in a category list would put a whole top-level domain in that category.
        raise InvalidDomain(f"{text!r} is a single label (a whole top-level domain)")
    if name.rpartition(".")[2].isdigit():
        raise InvalidDomain(f"{text!r} looks like an IP address but is not one")
    return EntryKind.DOMAIN, name


def parse_url(text: str) -> tuple[EntryKind, str, str]:
    """Turn ``host[:port]/path`` (a UT1 ``urls`` line; a scheme is allowed and dropped) into
    ``(kind, host, path prefix)``. The kind is ``URL`` whatever the host (a name or an IP).

    The path keeps its case and query: only a fragment and a trailing ``?`` are dropped,
    since neither reaches the server. A URL with no path gets ``/``, the whole site.
    """
    rest = text.split("://", 1)[1] if "://" in text else text
    host, slash, path = rest.partition("/")
    path = "/" + path if slash else "/"
    path = path.split("#", 1)[0]
    if path.endswith("?"):
        path = path[:-1]
    if any(c.isspace() for c in path):
        raise InvalidDomain(f"{text!r} has a space in its path")
    if "@" in host:
        raise InvalidDomain(f"{text!r} has user information before the host")
    if host.startswith("["):  # [2001:db8::1]:8080
        host, _, port = host[1:].partition("]")
        port = port.removeprefix(":")
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    else:
        port = ""
    if port and not port.isdigit():
        raise InvalidDomain(f"{text!r} has a port that is not a number")
    _, name = parse_host(host)
    return EntryKind.URL, name, path


class FirstSeen:
    """Lets each entry through once per source and counts the rest as duplicates.

    Memory: one set of names per (kind, category), holding the very strings that are yielded.
    A consumer that keeps the entries pays only for the set tables (30–50 bytes an entry); one
    that drops them pays about 120 (measured: 85 MB for the 710,000 entries of the shared UT1
    tarball). Fine up to a few million entries a source; beyond that, deduplicate in the
    index build instead.
    """

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        self._seen: dict[tuple[EntryKind, str], set[str]] = {}

    def __call__(self, entry: ListEntry) -> bool:
        """True (and counted as accepted) the first time ``entry`` comes; False after."""
        key = (entry.kind, entry.category)
        names = self._seen.get(key)
        if names is None:
            names = self._seen[key] = set()
        name = entry.domain if entry.path is None else entry.text
        if name in names:
            self.report.duplicates += 1
            return False
        names.add(name)
        self.report.accept(entry)
        return True
