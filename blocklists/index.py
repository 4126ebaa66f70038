"""The compact, memory-mapped domain index that every gateway process shares.

``build_index`` turns the entries of all enabled sources into one file, written atomically;
``open_index`` maps it read-only and answers the engine's one question (see
:class:`policies.lookup.CategoryLookup`): which categories does this host, or a parent domain
of it, belong to, and which list said so?

The structure was chosen by measurement (``bench/blocklist_bench.py``, table in
``docs/blocklist-index.md``): a marisa-trie of reversed names (exact, ~6.6 bytes a name here,
one C call finds every parent domain that is listed), a record-set id per name, and in front
of it a one-hash Bloom "gate" over the last two labels that answers most misses without
touching the trie. The byte layout is in :mod:`blocklists.index_format`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import json
import mmap
import os
import sys
import tempfile
import time
import zlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import marisa_trie

from blocklists.entries import EntryKind, ListEntry
from blocklists.errors import BlocklistError
from blocklists.index_format import (
    FORMAT_VERSION,
    HEADER_SIZE,
    KIND_DOMAIN,
    KIND_EXCEPTION,
    KIND_IP,
    KIND_NAMES,
    KIND_URL,
    REBUILD_HINT,
    damaged,
    pack_header,
    padding,
    read_header,
    read_meta,
    verify_body,
)
from policies.lookup import URL_DEPTH, CategoryMatch

__all__ = ["BlocklistError", "DomainIndex", "IndexStats", "build_index", "open_index"]

Progress = Callable[[int], None]

PROGRESS_EVERY = 1 << 16  # entries between progress calls: often enough for a bar, cheap
GATE_BITS_PER_NAME = 16  # ≤ 6 % of misses pass the gate by chance; costs 2 bytes a name
_KINDS = {EntryKind.DOMAIN: KIND_DOMAIN, EntryKind.IP: KIND_IP, EntryKind.URL: KIND_URL,
          EntryKind.EXCEPTION: KIND_EXCEPTION}
_TRIE_OPTIONS: dict[str, Any] = {}  # marisa defaults: 3 tries, the smallest; see the docs
_MAX_RECORDS = 1 << 24  # (category, source, kind) triples; set transitions pack into one int
_new_match = tuple.__new__  # CategoryMatch(...) without NamedTuple's Python-level __new__


@dataclass(frozen=True)
class IndexStats:
    """What an index holds, stored in its metadata so that reading it scans nothing.

    ``domains`` counts distinct names (host names and IP literals, including the hosts of URL
    entries and of exceptions); ``entries`` counts distinct (name, category, source, kind)
    entries, each URL path once. ``per_category`` and ``per_source`` count entries.
    """

    format_version: int
    built_at: str  # ISO 8601, UTC
    build_seconds: float
    domains: int
    entries: int
    duplicates: int  # entries given more than once (within a source or across sources)
    skipped: int  # entries the index cannot hold: an empty name, a URL path with a tab/newline
    per_kind: dict[str, int] = field(default_factory=dict)
    per_category: dict[str, int] = field(default_factory=dict)
    per_source: dict[str, int] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    file_size: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_index(sources: Iterable[tuple[str, Iterable[ListEntry]]], path: str | os.PathLike[str],
                *, progress: Progress | None = None) -> IndexStats:
    """Build the index of every entry of ``sources`` — (source name, its entries) pairs — into
    ``path``, atomically: a temporary file beside it is written, synced and renamed over it, so
    ``path`` holds either the previous index or the complete new one, never a mix.

    An exception from an entry iterator (a broken download, say) propagates unchanged; a
    failure to write (a full disk) raises :class:`BlocklistError`. In both cases the previous
    file stays as it was and no temporary file is left behind. ``progress`` is called with the
    number of entries read so far, every 65,536 entries and once at the end.
    """
    started = time.perf_counter()
    path = Path(path)
    collected = _Collector()
    collected.read(sources, progress)
    tables = collected.finish()
    return _write(path, collected, tables, started)


def open_index(path: str | os.PathLike[str], *, verify: bool = True) -> DomainIndex:
    """Map the index at ``path`` read-only. Refuses, with :class:`BlocklistError`, a file that
    is not an index, is truncated, or fails its checksum.

    The checksum reads the whole file (7 ms for the 21 MB of 2 M names here). ``verify=False``
    keeps only the header and size checks; use it only for a file this process has just built
    or verified, since the trie code trusts its bytes and a damaged trie can crash the process.
    """
    return DomainIndex(path, verify=verify)


class DomainIndex:
    """A read-only view of an index file; see :func:`open_index`.

    Several processes that open the same file share its pages (the page cache): the mapping is
    ``MAP_SHARED`` and read-only. An index stays usable after its file is replaced by a new
    build (it keeps the old inode); :meth:`changed_on_disk` tells when to open the new one.
    """

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise BlocklistError("there is no blocklist index here", file=str(self.path),
                                 hint="run `kalkan blocklists update` to build it") from None
        except OSError as exc:
            raise BlocklistError(f"cannot open the blocklist index: {exc.strerror}",
                                 file=str(self.path)) from None
        try:
            st = os.fstat(fd)
            self._identity = (st.st_dev, st.st_ino)
            file_size, meta_offset, meta_length, body_crc = read_header(fd, self.path)
            if verify:
                verify_body(fd, self.path, file_size, body_crc)
            meta = read_meta(fd, self.path, meta_offset, meta_length)
            mapped = mmap.mmap(fd, file_size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        except OSError as exc:  # a directory, an I/O error, no address space left
            raise BlocklistError(f"cannot read the blocklist index: {exc.strerror or exc}",
                                 file=str(self.path), hint=REBUILD_HINT) from None
        finally:
            os.close(fd)  # the mapping keeps its own reference to the file
        try:
            self._m: _Mapped | None = _Mapped(self.path, mapped, meta)
            stats = dict(meta["stats"])
            stats["sources"] = tuple(stats["sources"])
            self.stats = IndexStats(**stats, file_size=file_size)
        except (KeyError, TypeError, ValueError, IndexError):  # only without verify, or a bug
            raise damaged(self.path, "has metadata that does not fit its sections") from None
        self.meta = meta

    # --- the lookup interface ---------------------------------------------------------------

    def lookup(self, domain: str, path: str | None = None) -> tuple[CategoryMatch, ...]:
        """Every match for ``domain`` (normalised: A-labels, lower case, no trailing dot) or
        any parent domain of it, most specific first; URL entries match when ``path`` starts
        with their path. A source's exception for a name at or above ``domain`` cancels that
        source's matches on the exception's name and its parents (see the docs)."""
        m = self._m  # a local reference keeps the mapping alive through a concurrent close()
        if m is None:
            raise BlocklistError("the blocklist index is closed", file=str(self.path))
        rq = domain[::-1] + "."  # "a.b.example.kg" → "gk.elpmaxe.b.a.": parents are prefixes
        i = rq.find(".")
        if not (m.one_label and rq[:i + 1] in m.one_label):
            j = rq.find(".", i + 1)
            if j > 0:  # two labels or more: ask the gate about the last two
                bit = zlib.crc32(rq[:j + 1].encode()) % m.gate_bits
                if not m.gate[bit >> 3] >> (bit & 7) & 1:
                    return ()
        found: list[CategoryMatch] = []
        cancels: list[tuple[str, int]] | None = None
        n = len(domain)
        setids, sets = m.setids, m.sets
        for key, kid in m.trie.iter_prefixes_with_ids(rq):
            sid = setids[kid]
            info = sets[sid] or m.decode_set(sid)
            entry = domain[n + 1 - len(key):]
            depth = key.count(".")
            for category, source in info.domains:
                found.append(_new_match(CategoryMatch, (category, entry, source, depth)))
            if info.plain:
                continue
            if info.ips and len(key) == n + 1:  # an IP entry matches only the address itself
                for category, source in info.ips:
                    found.append(_new_match(CategoryMatch, (category, entry, source, depth)))
            if info.urls and path is not None:
                for prefix, category, source in m.url_entries().get(entry, ()):
                    if path.startswith(prefix):
                        found.append(_new_match(CategoryMatch, (
                            category, entry + prefix, source, URL_DEPTH + depth)))
            if info.exceptions:
                cancels = cancels or []
                cancels.extend((source, depth) for source in info.exceptions)
        if cancels:
            found = [f for f in found if not _cancelled(f, cancels)]
        if len(found) > 1:
            found.sort(key=_specificity)  # stable: at one depth, the set's own order
        return tuple(found)

    # --- housekeeping -----------------------------------------------------------------------

    def changed_on_disk(self) -> bool:
        """True when ``path`` now names another file (a new build), or none."""
        try:
            st = os.stat(self.path)
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._identity

    @property
    def closed(self) -> bool:
        return self._m is None

    def close(self) -> None:
        """Stop answering and release the mapping. The pages are unmapped once no lookup is
        running any more (the last reference goes); never while the trie may read them."""
        self._m = None

    def __enter__(self) -> DomainIndex:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __len__(self) -> int:
        return self.stats.domains

    def __repr__(self) -> str:
        state = "closed" if self._m is None else f"{self.stats.domains} names"
        return f"<DomainIndex {self.path} {state}>"


# --- lookup internals ---------------------------------------------------------------------

def _specificity(match: CategoryMatch) -> int:
    return -match.depth


def _cancelled(match: CategoryMatch, cancels: list[tuple[str, int]]) -> bool:
    depth = match.depth - URL_DEPTH if match.depth >= URL_DEPTH else match.depth
    return any(match.source == source and depth <= at for source, at in cancels)


@dataclass(slots=True)
class _SetInfo:
    """One record set, decoded once for Python: what a name matches, by kind."""

    domains: tuple[tuple[str, str], ...]  # (category, source)
    ips: tuple[tuple[str, str], ...]
    urls: bool  # the name has URL entries: look at the url table
    exceptions: tuple[str, ...]  # sources whose exception names this name
    plain: bool  # domain entries only: the fast path


class _Mapped:
    """Everything that reads the mapping, so that one reference keeps all of it alive: the
    trie points into the mapping without owning it."""

    def __init__(self, path: Path, mapped: mmap.mmap, meta: dict[str, Any]) -> None:
        self.mapped = mapped
        view = memoryview(mapped)
        sections = meta["sections"]

        def section(name: str) -> memoryview:
            offset, length = sections[name]
            return view[offset:offset + length]

        try:
            self.trie = marisa_trie.Trie().map(section("trie"))
        except RuntimeError as exc:
            raise damaged(path, f"has an unreadable trie ({exc})") from None
        self.setids = section("setids").cast(meta["setids_type"])
        sets = section("sets").cast("I")
        self.set_count = sets[0] if len(sets) else 0
        self.set_offsets = sets[1:self.set_count + 2]
        self.set_members = sets[self.set_count + 2:]
        self.gate = section("gate")
        self.gate_bits = meta["gate_bits"]
        self.one_label = frozenset(meta["one_label"])
        if (len(self.setids) != len(self.trie) or self.gate_bits < 8
                or len(self.gate) * 8 < self.gate_bits
                or len(self.set_offsets) != self.set_count + 1):
            raise damaged(path, "has sections that do not fit together")
        self.categories = [sys.intern(c) for c in meta["categories"]]
        self.sources = [sys.intern(s) for s in meta["sources"]]
        self.records = [(self.categories[c], self.sources[s], k) for c, s, k in meta["records"]]
        self.sets: list[_SetInfo | None] = [None] * self.set_count
        self._urls_view = section("urls")
        self._urls: dict[str, tuple[tuple[str, str, str], ...]] | None = None

    def decode_set(self, sid: int) -> _SetInfo:
        members = [self.records[r] for r in
                   self.set_members[self.set_offsets[sid]:self.set_offsets[sid + 1]]]
        domains = tuple((c, s) for c, s, k in members if k == KIND_DOMAIN)
        info = _SetInfo(
            domains=domains,  # an IP entry that is also a domain entry would answer twice:
            ips=tuple((c, s) for c, s, k in members if k == KIND_IP and (c, s) not in domains),
            urls=any(k == KIND_URL for _, _, k in members),
            exceptions=tuple(s for _, s, k in members if k == KIND_EXCEPTION),
            plain=all(k == KIND_DOMAIN for _, _, k in members))
        self.sets[sid] = info  # a race only decodes the same set twice
        return info

    def url_entries(self) -> dict[str, tuple[tuple[str, str, str], ...]]:
        """URL entries by domain, longest path first; parsed on first use, since only the
        proxy asks with a path and UT1 has about a thousand of them."""
        if self._urls is None:
            table: dict[str, list[tuple[str, str, str]]] = {}
            for line in bytes(self._urls_view).decode("utf-8").split("\n")[:-1]:
                domain, path, record = line.split("\t")  # not splitlines(): \x1c, \u2028 …
                category, source, _ = self.records[int(record)]
                table.setdefault(domain, []).append((path, category, source))
            self._urls = {d: tuple(sorted(v, key=lambda u: (-len(u[0]), u)))
                          for d, v in table.items()}
        return self._urls


# --- building ------------------------------------------------------------------------------

class _Collector:
    """Reads every entry once into the smallest Python form that still lets the index dedupe:
    name → record-set id, where equal sets are shared and a set plus one record is looked up
    in a transition table instead of being rebuilt."""

    def __init__(self) -> None:
        self.names: dict[str, int] = {}  # reversed name + "." → set id
        self.records: dict[tuple[str, str, int], int] = {}  # (category, source, kind) → id
        self.sets: list[tuple[int, ...]] = []  # set id → sorted record ids
        self.set_ids: dict[tuple[int, ...], int] = {}
        self.single: list[int] = []  # record id → id of the set holding just that record
        self.transitions: dict[int, int] = {}  # set id << 24 | record id → set id
        self.counts: list[int] = []  # record id → entries
        self.urls: set[tuple[str, str, int]] = set()  # (domain, path, record id)
        self.one_label: set[str] = set()  # reversed one-label names, IPv6 addresses aside
        self.sources: list[str] = []
        self.read_count = 0
        self.duplicates = 0
        self.skipped = 0

    def _set_id(self, members: tuple[int, ...]) -> int:
        sid = self.set_ids.get(members)
        if sid is None:
            sid = self.set_ids[members] = len(self.sets)
            self.sets.append(members)
        return sid

    def _record(self, category: str, source: str, kind: int) -> int:
        rid = len(self.counts)
        if rid >= _MAX_RECORDS:
            raise BlocklistError("too many (category, source) pairs for one index",
                                 hint="use fewer sources or categories")
        self.records[(category, source, kind)] = rid
        self.counts.append(0)
        self.single.append(self._set_id((rid,)))
        return rid

    def read(self, sources: Iterable[tuple[str, Iterable[ListEntry]]],
             progress: Progress | None) -> None:
        names, records, transitions, counts = (
            self.names, self.records, self.transitions, self.counts)
        single, sets = self.single, self.sets
        n = self.read_count
        for source, entries in sources:
            if source not in self.sources:
                self.sources.append(source)
            for entry in entries:
                n += 1
                if progress is not None and not n % PROGRESS_EVERY:
                    progress(n)
                domain = entry.domain
                kind = _KINDS[entry.kind]
                if not domain:
                    self.skipped += 1
                    continue
                rkey = (entry.category, source, kind)
                rid = records.get(rkey)
                if rid is None:
                    rid = self._record(*rkey)
                if kind == KIND_URL:
                    url_path = entry.path or "/"
                    if "\t" in url_path + domain or "\n" in url_path + domain:
                        self.skipped += 1
                        continue
                    url = (domain, url_path, rid)
                    if url in self.urls:
                        self.duplicates += 1
                        continue
                    self.urls.add(url)
                    counts[rid] += 1
                key = domain[::-1] + "."
                cur = names.get(key)
                if cur is None:
                    names[key] = single[rid]
                    if kind != KIND_URL:
                        counts[rid] += 1
                    continue
                step = cur << 24 | rid
                nxt = transitions.get(step)
                if nxt is None:
                    members = sets[cur]
                    nxt = cur if rid in members else self._set_id(
                        tuple(sorted((*members, rid))))
                    transitions[step] = nxt
                if nxt == cur:
                    if kind != KIND_URL:  # URL duplicates are counted above, per path
                        self.duplicates += 1
                    continue
                names[key] = nxt
                if kind != KIND_URL:
                    counts[rid] += 1
        self.read_count = n
        if progress is not None:
            progress(n)

    def finish(self) -> dict[str, Any]:
        """The trie and the tables, ready to write; frees what the write does not need."""
        self.transitions.clear()
        self.set_ids.clear()
        # Member order inside a set is the answer order at one depth: make it readable and
        # independent of the order the lists came in (kind, category, source).
        by_rid = {rid: key for key, rid in self.records.items()}
        order = sorted(by_rid, key=lambda r: (by_rid[r][2], by_rid[r][0], by_rid[r][1]))
        rank = {rid: i for i, rid in enumerate(order)}
        trie = marisa_trie.Trie(self.names, **_TRIE_OPTIONS)
        typecode = "H" if len(self.sets) <= 0xFFFF else "I"
        setids = array(typecode, bytes(len(trie) * array(typecode).itemsize))
        names = self.names
        for key, kid in trie.iteritems():  # one walk: 2.5x faster than key_id() per name
            setids[kid] = names[key]
        gate_bits = max(8, -(-len(self.names) * GATE_BITS_PER_NAME // 8) * 8)
        gate = bytearray(gate_bits // 8)
        crc32 = zlib.crc32
        ip_only = {sid for sid, members in enumerate(self.sets)
                   if all(by_rid[r][2] == KIND_IP for r in members)}
        for key, sid in names.items():
            i = key.find(".")
            j = key.find(".", i + 1)
            if j > 0:
                bit = crc32(key[:j + 1].encode()) % gate_bits
                gate[bit >> 3] |= 1 << (bit & 7)
            elif sid not in ip_only:  # a one-label name ("zip") is a parent of "evil.zip"
                self.one_label.add(key)
        self.names.clear()
        sets = array("I", [len(self.sets)])
        offset = 0
        for members in self.sets:
            sets.append(offset)
            offset += len(members)
        sets.append(offset)
        for members in self.sets:
            sets.extend(sorted(members, key=rank.__getitem__))
        urls = "".join(f"{d}\t{p}\t{r}\n" for d, p, r in sorted(self.urls)).encode("utf-8")
        return {"trie": trie, "setids": setids, "sets": sets, "gate": gate, "urls": urls,
                "gate_bits": gate_bits, "domains": len(trie), "by_rid": by_rid}


class _Writer:
    """Writes sections in order, each 8-aligned, keeping the running checksum."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.position = HEADER_SIZE
        self.crc = 0
        file.write(bytes(HEADER_SIZE))

    def write(self, data: bytes | bytearray | memoryview) -> tuple[int, int]:
        pad = padding(self.position)
        if pad:
            self.file.write(pad)
            self.crc = zlib.crc32(pad, self.crc)
            self.position += len(pad)
        offset = self.position
        self.file.write(data)
        self.crc = zlib.crc32(data, self.crc)
        self.position += len(data)
        return offset, len(data)


def _write(path: Path, collected: _Collector, tables: dict[str, Any], started: float) -> IndexStats:
    by_rid: dict[int, tuple[str, str, int]] = tables["by_rid"]
    categories = sorted({c for c, _, _ in by_rid.values()})
    cat_index = {c: i for i, c in enumerate(categories)}
    src_index = {s: i for i, s in enumerate(collected.sources)}
    records = [[cat_index[by_rid[r][0]], src_index[by_rid[r][1]], by_rid[r][2]]
               for r in range(len(by_rid))]
    per_kind = dict.fromkeys(KIND_NAMES, 0)
    per_category: dict[str, int] = {}
    per_source = dict.fromkeys(collected.sources, 0)
    for rid, count in enumerate(collected.counts):
        category, source, kind = by_rid[rid]
        per_kind[KIND_NAMES[kind]] += count
        per_category[category] = per_category.get(category, 0) + count
        per_source[source] += count

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as file:
            out = _Writer(file)
            sections = {
                "trie": out.write(tables["trie"].tobytes()),
                "setids": out.write(tables["setids"].tobytes()),
                "sets": out.write(tables["sets"].tobytes()),
                "gate": out.write(tables["gate"]),
                "urls": out.write(tables["urls"]),
            }
            stats = IndexStats(
                format_version=FORMAT_VERSION,
                built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                build_seconds=round(time.perf_counter() - started, 3),
                domains=tables["domains"], entries=sum(collected.counts),
                duplicates=collected.duplicates, skipped=collected.skipped,
                per_kind=per_kind, per_category=dict(sorted(per_category.items())),
                per_source=per_source, sources=tuple(collected.sources))
            stored = stats.as_dict()
            del stored["file_size"]  # the header has it; the metadata cannot know its own size
            meta = {
                "sections": {k: list(v) for k, v in sections.items()},
                "setids_type": tables["setids"].typecode,
                "gate_bits": tables["gate_bits"],
                "one_label": sorted(collected.one_label),
                "categories": categories,
                "sources": collected.sources,
                "records": records,
                "stats": stored,
                "marisa_trie": _marisa_version(),
            }
            meta_offset, meta_length = out.write(
                json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
            file_size = out.position
            file.seek(0)
            file.write(pack_header(file_size=file_size, meta_offset=meta_offset,
                                   meta_length=meta_length, body_crc=out.crc))
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise BlocklistError(
                f"cannot write the blocklist index: {exc.strerror or exc}", file=str(path),
                hint="free some disk space and run `kalkan blocklists update` again; "
                     "the previous index stays in service") from exc
        raise
    _sync_directory(path.parent)
    return replace(stats, file_size=file_size)


def _marisa_version() -> str | None:
    try:
        return importlib.metadata.version("marisa-trie")
    except importlib.metadata.PackageNotFoundError:
        return None


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable: without this a power cut can bring the old name back."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass  # some file systems cannot sync a directory; the rename is still atomic
    finally:
        os.close(dfd)
