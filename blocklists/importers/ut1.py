"""UT1 category lists: ``blacklists/<category>/domains`` and ``.../urls``, as a directory or a
tarball (``.tar.gz`` read as a stream, never extracted to disk).

``domains`` lines are host names or IPv4 literals (domain and IP entries); ``urls`` lines are
``host/path`` without a scheme (URL entries, for the proxy). Upstream, some categories are
symlinks to others (``violence`` → ``agressif``, ``strong_redirector`` → ``redirector``):
such a category is an *alias*. Its files are read once, under every kalkan category that the
category and its aliases map to, and the alias is recorded in ``ImportReport.aliases``.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from blocklists.entries import ImportReport, ListEntry
from blocklists.errors import BlocklistError
from blocklists.importers.common import (
    BROKEN_ARCHIVE,
    FirstSeen,
    Source,
    broken,
    check_source,
    iter_lines,
    parse_host,
    parse_url,
    source_name,
)
from blocklists.mapping import CategoryMapping, default_ut1_mapping
from policies.domain import InvalidDomain

LIST_FILES = ("domains", "urls")
NOT_USED = "ut1 file not used"  # LICENSE.pdf, usage, expressions: not lists of names


def read_ut1(source: Source, *, mapping: CategoryMapping | None = None,
             report: ImportReport) -> Iterator[ListEntry]:
    """Entries of a UT1 directory (``blacklists/`` or its parent, or one category directory),
    a tarball path, or a binary stream of a tarball, mapped through ``mapping`` (default: the
    packaged ``ut1.yaml``). Categories the mapping does not name go to ``report.unmapped``.

    Raises :class:`BlocklistError` when the path does not exist or the archive is not a tar
    archive or turns out truncated or corrupt: then the whole import must be discarded.
    """
    check_source(source)
    reader = _CategoryReader(mapping if mapping is not None else default_ut1_mapping(), report)
    if isinstance(source, str | os.PathLike) and os.path.isdir(source):
        return _read_directory(*_category_dirs(Path(source)), reader)
    if isinstance(source, str | os.PathLike) and not _is_tarfile(source):
        raise _not_tar(os.fspath(source), "no tar header")
    return _read_tarball(source, reader)


class _CategoryReader:
    """Reads one category file under the kalkan categories that its UT1 categories map to."""

    def __init__(self, mapping: CategoryMapping, report: ImportReport) -> None:
        self.mapping = mapping
        self.report = report
        self.first_seen = FirstSeen(report)

    def targets(self, categories: list[str]) -> list[str]:
        out: list[str] = []
        for category in categories:
            target = self.mapping.get(category)
            if target is not None and target not in out:
                out.append(target)
        return out

    def read(self, stream: IO[bytes], name: str, kind: str, categories: list[str],
             counts: ImportReport | None = None) -> Generator[ListEntry, None, int]:
        """Yield the file's entries; return its number of lines.

        ``counts`` takes the line counts when the file is read again for a late alias.
        """
        report = self.report
        counts = counts if counts is not None else report
        targets = self.targets(categories)
        before = counts.lines
        if targets:
            yield from self._entries(stream, name, kind == "urls", targets, counts)
            lines = counts.lines - before
        else:
            lines = sum(1 for _ in stream)  # nothing to import: only say how much is left out
            counts.lines += lines
            for category in categories:
                if self.mapping.get(category, "") is None:
                    report.skip(f"left out by the mapping ({category})", lines)
        for category in categories:
            if category not in self.mapping:
                report.unmapped[category] = report.unmapped.get(category, 0) + lines
        return lines

    def _entries(self, stream: IO[bytes], name: str, urls: bool, targets: list[str],
                 counts: ImportReport) -> Iterator[ListEntry]:
        first_seen = self.first_seen
        path: str | None = None
        for number, text in iter_lines(stream, name, self.report, counts):
            if not text:
                counts.skip("blank")
                continue
            if text[0] == "#":
                counts.skip("comment")
                continue
            try:
                if urls:
                    kind, host, path = parse_url(text)
                elif "/" in text:
                    raise InvalidDomain(f"{text!r} is a URL in a domains file (UT1 keeps "
                                        "those in urls)")
                else:
                    kind, host = parse_host(text)
            except InvalidDomain as exc:
                counts.reject(name, number, text, exc.message)
                continue
            for category in targets:
                entry = ListEntry(host, category, kind, path)
                if first_seen(entry):
                    yield entry


# --- directories ---------------------------------------------------------------------------

def _read_directory(categories: list[Path], other_files: int,
                    reader: _CategoryReader) -> Iterator[ListEntry]:
    report = reader.report
    if other_files:
        report.skip(NOT_USED, other_files)
    # real file → [(category, path as listed, reached through a symlink?)]
    files: dict[str, list[tuple[str, Path, bool]]] = {}
    for cat_dir in categories:
        linked_dir = cat_dir.is_symlink()
        for entry in sorted(os.scandir(cat_dir), key=lambda e: e.name):
            if entry.name not in LIST_FILES or not entry.is_file():
                if not linked_dir and entry.is_file():
                    report.skip(NOT_USED)
                continue
            real = os.path.realpath(entry.path)
            refs = files.setdefault(real, [])
            refs.append((cat_dir.name, Path(entry.path), linked_dir or entry.is_symlink()))
    for real, refs in files.items():
        refs.sort(key=lambda ref: ref[2])  # the category that owns the file first
        owner, shown, owned = refs[0][0], refs[0][1], not refs[0][2]
        for category, _, linked in refs[1:]:
            if linked and owned:
                report.aliases[category] = owner
        names = list(dict.fromkeys(category for category, _, _ in refs))
        with open(real, "rb") as stream:
            yield from reader.read(stream, str(shown), Path(real).name, names)


def _category_dirs(root: Path) -> tuple[list[Path], int]:
    """The category directories under ``root`` (``root`` itself when it holds the lists) and
    the number of other files beside them (LICENSE.pdf, README)."""
    if any((root / name).is_file() for name in LIST_FILES):
        return [root], 0
    if (root / "blacklists").is_dir():
        root = root / "blacklists"
    found = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")),
                   key=lambda p: p.name)  # not .git and the like
    if not found:
        raise BlocklistError("no UT1 category directories here", file=str(root),
                             hint="point to the blacklists/ directory or the .tar.gz")
    return found, sum(1 for p in root.iterdir() if p.is_file())


# --- tarballs ------------------------------------------------------------------------------

@dataclass
class _ReadFile:
    categories: list[str]  # the UT1 categories it was read under (its own, early aliases)
    targets: list[str]  # the kalkan categories those map to
    lines: int


def _read_tarball(source: Source, reader: _CategoryReader) -> Iterator[ListEntry]:
    name = source_name(source, reader.report)
    start = _position(source)
    try:
        links: dict[str, str] = {}
        done: dict[str, _ReadFile] = {}
        with _open_tar(source, name) as tar:
            yield from _read_members(tar, name, reader, links, done)
        again = _late_aliases(links, done, reader)
        if not again:
            return
        if start is None and not isinstance(source, str | os.PathLike):
            # A pipe cannot be read twice: say which lines the late aliases miss.
            for member, aliases in again.items():
                for alias in aliases:
                    unmapped = reader.report.unmapped
                    unmapped[alias] = unmapped.get(alias, 0) + done[member].lines
            return
        if start is not None:
            source.seek(start)  # type: ignore[union-attr]
        with _open_tar(source, name) as tar:
            yield from _read_members(tar, name, reader, {}, {}, again)
    except BROKEN_ARCHIVE as exc:
        raise broken(name, exc) from exc


def _position(source: Source) -> int | None:
    """Where a seekable stream starts, so that it can be read a second time."""
    if isinstance(source, str | os.PathLike):
        return None
    try:
        return source.tell() if source.seekable() else None
    except (OSError, ValueError):
        return None


def _open_tar(source: Source, name: str) -> tarfile.TarFile:
    # "r|*": a forward-only stream, any compression; nothing is written to disk.
    try:
        if isinstance(source, str | os.PathLike):
            return tarfile.open(source, mode="r|*")
        return tarfile.open(fileobj=source, mode="r|*")  # type: ignore[call-overload]
    except tarfile.ReadError as exc:
        raise _not_tar(name, str(exc)) from None


def _is_tarfile(path: str | os.PathLike[str]) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except BROKEN_ARCHIVE:
        return False


def _not_tar(name: str, why: str) -> BlocklistError:
    return BlocklistError(f"not a tar archive ({why})", file=name,
                          hint="UT1 comes as a directory or a .tar.gz; for a single list "
                               "use the plain format")


def _read_members(tar: tarfile.TarFile, name: str, reader: _CategoryReader,
                  links: dict[str, str], done: dict[str, _ReadFile],
                  only: dict[str, list[str]] | None = None) -> Iterator[ListEntry]:
    """One pass over the archive. With ``only``, read just those members (late aliases)."""
    report = reader.report
    for member in tar:
        path = _member_path(member.name)
        if member.issym() or member.islnk():
            if only is None:
                links[path] = _link_target(path, member)
            continue
        if not member.isfile():
            continue
        parts = path.split("/")
        if len(parts) < 2 or parts[-1] not in LIST_FILES:
            if only is None:
                report.skip(NOT_USED)
            continue
        stream = tar.extractfile(member)
        assert stream is not None  # a regular file always has content
        shown = f"{name}:{path}"
        if only is not None:
            if path in only:
                yield from reader.read(stream, shown, parts[-1], only[path], ImportReport(name))
            continue
        categories = [parts[-2]]
        for link in links:
            alias = _alias_category(link, path, links)
            if alias and alias not in categories:
                categories.append(alias)
                report.aliases[alias] = parts[-2]
        lines = yield from reader.read(stream, shown, parts[-1], categories)
        done[path] = _ReadFile(categories, reader.targets(categories), lines)


def _late_aliases(links: dict[str, str], done: dict[str, _ReadFile],
                  reader: _CategoryReader) -> dict[str, list[str]]:
    """Symlinks that came after the files they point to: the files to read again, with the
    alias categories that add a kalkan category (in the usual mapping, none)."""
    again: dict[str, list[str]] = {}
    for link in links:
        hits = [(path, alias) for path in done
                if (alias := _alias_category(link, path, links))]
        if not hits:
            reader.report.skip("ut1 symlink to a missing category")
        for path, alias in hits:
            read = done[path]
            if alias in read.categories:
                continue
            read.categories.append(alias)
            reader.report.aliases[alias] = path.split("/")[-2]
            if alias not in reader.mapping:
                unmapped = reader.report.unmapped
                unmapped[alias] = unmapped.get(alias, 0) + read.lines
                continue
            target = reader.mapping[alias]
            if target is not None and target not in read.targets:
                read.targets.append(target)
                again.setdefault(path, []).append(alias)
    return again


def _member_path(name: str) -> str:
    return posixpath.normpath(name).lstrip("/")


def _link_target(path: str, member: tarfile.TarInfo) -> str:
    if member.islnk():  # a hard link names another member of the archive
        return _member_path(member.linkname)
    return _member_path(posixpath.join(posixpath.dirname(path), member.linkname))


def _resolve(path: str, links: dict[str, str]) -> str | None:
    """Follow symlinks inside the archive's namespace; ``None`` for a loop."""
    for _ in range(32):
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if prefix in links:
                path = _member_path("/".join([links[prefix], *parts[i:]]))
                break
        else:
            return path
    return None


def _alias_category(link: str, path: str, links: dict[str, Any]) -> str | None:
    """The category that ``link`` makes an alias of the list file ``path``, if it does: a
    directory link (``violence`` → ``agressif``) or a file link (``violence/domains``)."""
    kind = posixpath.basename(path)
    if _resolve(f"{link}/{kind}", links) == path:
        return posixpath.basename(link)
    if posixpath.basename(link) == kind and _resolve(link, links) == path:
        return link.split("/")[-2] if "/" in link else None
    return None
