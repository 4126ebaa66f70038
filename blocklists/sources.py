"""Which lists kalkan reads: add, remove, enable and list sources (rows in the database).

A source's ``location`` is an ``https://`` or ``http://`` URL, a local path, or
``bundled:FILE`` for the lists shipped inside the package (``blocklists/data``), which is how
a school without internet still gets a working default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from blocklists.errors import BlocklistError
from blocklists.importers import FORMATS, MAPPED_FORMATS, SINGLE_CATEGORY_FORMATS
from blocklists.mapping import CategoryMapping
from blocklists.models import BlocklistSource
from policies.database import utcnow
from policies.models import Category

BUNDLED_DIR = Path(__file__).with_name("data")
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class BundledSource:
    name: str
    file: str
    format: str
    category: str | None


# Shipped with kalkan so that a fresh or offline school filters from the first minute.
BUNDLED = (
    BundledSource("ut1", "ut1-school.tar.gz", "ut1", None),
    BundledSource("education-allowlist", "education-allowlist.txt", "plain", "education"),
    BundledSource("government-allowlist", "government-allowlist.txt", "plain", "government"),
)


def bundled_path(location: str) -> Path | None:
    if not location.startswith("bundled:"):
        return None
    return BUNDLED_DIR / location.removeprefix("bundled:")


def add_source(db: Session, name: str, location: str, fmt: str, *,
               category: str | None = None, mapping: str | None = None) -> BlocklistSource:
    """Register a list; nothing is downloaded until ``update``."""
    if not NAME.match(name):
        raise BlocklistError(f"{name!r} is not a usable source name",
                             hint="use lowercase Latin letters, digits, '-' and '_'")
    if db.get(BlocklistSource, name) is not None:
        raise BlocklistError(f"there is already a source named {name!r}",
                             hint="choose another name, or `kalkan blocklists remove` it first")
    if fmt not in FORMATS:
        raise BlocklistError(f"unknown list format {fmt!r}",
                             hint=f"use one of: {', '.join(FORMATS)}")
    known = set(db.scalars(select(Category.id)))
    if fmt in SINGLE_CATEGORY_FORMATS:
        if not category:
            raise BlocklistError(f"a {fmt} list belongs to one category",
                                 hint="add --category, e.g. --category ads")
        if category not in known:
            raise BlocklistError(f"unknown category {category!r}",
                                 hint=f"use one of: {', '.join(sorted(known))}")
    elif category:
        raise BlocklistError(f"a {fmt} list names its own categories",
                             hint="leave out --category; use --mapping to map them")
    if mapping:
        if fmt not in MAPPED_FORMATS:
            raise BlocklistError(f"a {fmt} list has no categories to map",
                                 hint="leave out --mapping")
        CategoryMapping.load(mapping, known=known or None)  # refuse a bad mapping now
    _check_location(location)
    source = BlocklistSource(name=name, location=location, format=fmt, category=category,
                             mapping=str(Path(mapping).resolve()) if mapping else None,
                             enabled=True, added_at=utcnow(), entries=0, report={})
    db.add(source)
    db.commit()
    return source


def _check_location(location: str) -> None:
    if location.startswith(("http://", "https://")):
        return
    bundled = bundled_path(location)
    path = bundled if bundled is not None else Path(location)
    if not path.exists():
        raise BlocklistError(f"{location}: no such file or directory",
                             hint="give an https:// URL or the path of a list on this machine")


def get_source(db: Session, name: str) -> BlocklistSource:
    source = db.get(BlocklistSource, name)
    if source is None:
        names = ", ".join(db.scalars(select(BlocklistSource.name))) or "none yet"
        raise BlocklistError(f"there is no source named {name!r}", hint=f"sources: {names}")
    return source


def remove_source(db: Session, name: str) -> None:
    db.delete(get_source(db, name))
    db.commit()


def set_enabled(db: Session, name: str, enabled: bool) -> BlocklistSource:
    source = get_source(db, name)
    source.enabled = enabled
    db.commit()
    return source


def list_sources(db: Session) -> list[BlocklistSource]:
    return list(db.scalars(select(BlocklistSource).order_by(BlocklistSource.added_at,
                                                             BlocklistSource.name)))


def ensure_bundled_sources(db: Session) -> list[str]:
    """Add the shipped sources that are missing (first run); returns their names."""
    added = []
    for b in BUNDLED:
        if db.get(BlocklistSource, b.name) is None:
            db.add(BlocklistSource(name=b.name, location=f"bundled:{b.file}", format=b.format,
                                   category=b.category, enabled=True, added_at=utcnow(),
                                   entries=0, report={}))
            added.append(b.name)
    if added:
        db.commit()
    return added
