"""``kalkan blocklists update``: fetch every enabled source, check it, build the new index beside
the old one and swap it in atomically. Anything that fails keeps what was there before.

Two passes over each list: the first, right after the download, parses it completely (a list
that does not parse, or that shrank to less than half of its last good size, is refused and the
cached copy from the last good update is used); the second feeds the index build.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from blocklists.entries import ImportReport, ListEntry
from blocklists.errors import BlocklistError
from blocklists.fetch import discard, fetch, promote
from blocklists.importers import read_list
from blocklists.index import IndexStats, build_index
from blocklists.mapping import CategoryMapping
from blocklists.models import BlocklistSource
from blocklists.progress import Progress, QuietProgress
from blocklists.sources import bundled_path, list_sources
from policies.database import utcnow

SHRINK_LIMIT = 0.5  # a new list with less than half the entries of the last good one is suspect


@dataclass
class SourceOutcome:
    name: str
    ok: bool
    entries: int = 0
    error: str | None = None
    used_previous: bool = False  # the build used the cached copy of the last good update
    report: ImportReport | None = None


@dataclass
class UpdateResult:
    index_path: Path
    outcomes: list[SourceOutcome] = field(default_factory=list)
    stats: IndexStats | None = None

    @property
    def failed(self) -> list[SourceOutcome]:
        return [o for o in self.outcomes if not o.ok]


def index_path(data_dir: Path) -> Path:
    return data_dir / "blocklists" / "index.kbi"


def cache_path(data_dir: Path, source: BlocklistSource) -> Path:
    """Where the last good copy of ``source`` is kept (bundled and local directories: in place)."""
    bundled = bundled_path(source.location)
    if bundled is not None:
        return bundled
    local = Path(source.location)
    if not source.location.startswith(("http://", "https://")) and local.is_dir():
        return local
    return data_dir / "blocklists" / "cache" / f"{source.name}.list"


def update(db: Session, data_dir: Path, *, only: list[str] | None = None,
           force: bool = False, progress: Progress | None = None,
           timeout: float = 120.0, max_bytes: int = 512 << 20) -> UpdateResult:
    """Update the sources (all enabled, or ``only``) and rebuild the index from every enabled
    source that has a good copy. Raises :class:`BlocklistError` only when no index could be
    built; per-source failures are in the result and in each source's ``last_error``."""
    progress = progress or QuietProgress()
    result = UpdateResult(index_path(data_dir))
    sources = [s for s in list_sources(db) if s.enabled]
    for source in sources:
        if only and source.name not in only:
            continue
        outcome = _refresh_source(source, data_dir, force=force, progress=progress,
                                  timeout=timeout, max_bytes=max_bytes)
        result.outcomes.append(outcome)
        db.commit()

    usable = [s for s in sources if cache_path(data_dir, s).exists()]
    for o in result.outcomes:
        o.used_previous = not o.ok and any(s.name == o.name for s in usable)
    progress.start(f"building the index from {len(usable)} sources")
    try:
        result.stats = build_index(((s.name, _entries(s, data_dir)) for s in usable),
                                   result.index_path, progress=progress)
    except BlocklistError:
        raise
    except OSError as exc:
        raise BlocklistError(f"cannot build the index: {exc.strerror or exc}",
                             hint="free space in the data directory and run the update again; "
                                  "the previous index stays in service") from None
    finally:
        progress.finish()
    return result


def _refresh_source(source: BlocklistSource, data_dir: Path, *, force: bool,
                    progress: Progress, timeout: float, max_bytes: int) -> SourceOutcome:
    source.last_attempt_at = utcnow()
    final = cache_path(data_dir, source)
    progress.start(f"{source.name}: fetching {source.location}")
    tmp: Path | None = None
    try:
        tmp, sha256 = fetch(source.location, final.parent, timeout=timeout, max_bytes=max_bytes)
        progress.start(f"{source.name}: checking")
        report = ImportReport(source.name)
        count = 0
        for count, _ in enumerate(_read(source, tmp, report), 1):
            if count % 65536 == 0:
                progress(count)
        progress(count)
        if report.accepted == 0:
            raise BlocklistError(f"{source.name}: the list holds no usable entry "
                                 f"({report.invalid} invalid lines)",
                                 hint="check the address and the --format of the source")
        if (not force and source.entries
                and report.accepted < SHRINK_LIMIT * source.entries):
            raise BlocklistError(
                f"{source.name}: the new list has {report.accepted:,} entries, less than half "
                f"of the {source.entries:,} of the last good update",
                hint="if that is right, run `kalkan blocklists update --force`")
    except BlocklistError as exc:
        text = str(exc)
        if tmp is not None and tmp != final:
            discard(tmp)
            text = text.replace(str(tmp), source.location)  # name the list, not our temp file
        if "stays in service" not in text:
            text += "\n  → the last good copy of this list stays in service"
        source.last_error = text
        return SourceOutcome(source.name, ok=False, error=text)
    finally:
        progress.finish()
    if tmp != final:
        promote(tmp, final)
    source.last_success_at = utcnow()
    source.last_error = None
    source.last_sha256 = sha256
    source.entries = report.accepted
    source.report = _report_dict(report)
    return SourceOutcome(source.name, ok=True, entries=report.accepted, report=report)


def _read(source: BlocklistSource, path: Path, report: ImportReport) -> Iterator[ListEntry]:
    mapping = CategoryMapping.load(source.mapping) if source.mapping else None
    return read_list(source.format, path, report=report, category=source.category,
                     mapping=mapping)


def _entries(source: BlocklistSource, data_dir: Path) -> Iterator[ListEntry]:
    report = ImportReport(source.name)
    yield from _read(source, cache_path(data_dir, source), report)


def _report_dict(report: ImportReport) -> dict:
    return {
        "lines": report.lines, "accepted": report.accepted, "duplicates": report.duplicates,
        "invalid": report.invalid, "skipped": dict(report.skipped),
        "per_category": dict(report.per_category), "unmapped": dict(report.unmapped),
        "invalid_examples": [list(x) for x in report.invalid_examples],
    }


