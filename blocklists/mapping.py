"""Which kalkan category each category of a source list goes to: an editable YAML file.

One line a source category: ``agressif: violence``, or ``webmail: null`` to leave a category
out on purpose. A category that the file does not name at all is *unmapped*: the importer
counts its lines in ``ImportReport.unmapped`` so that nobody loses a list without noticing.
The default for UT1 ships with the package (``blocklists/mappings/ut1.yaml``).
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from types import MappingProxyType

from blocklists.errors import BlocklistError
from policies.categories import DEFAULT_CATEGORIES
from policies.yamlfile import load_located

DEFAULT_CATEGORY_IDS = frozenset(c.id for c in DEFAULT_CATEGORIES)


class CategoryMapping(Mapping[str, str | None]):
    """Source category → kalkan category id, or ``None`` for a category left out on purpose.

    ``name in mapping`` says whether the file mentions a category at all; ``mapping[name]``
    is its target (``None``: skip it). Immutable, so one instance can be shared.
    """

    def __init__(self, targets: Mapping[str, str | None], *, name: str = "<mapping>") -> None:
        self._targets = MappingProxyType(dict(targets))
        self.name = name

    @classmethod
    def from_yaml(cls, text: str, file: str, *,
                  known: Iterable[str] | None = None) -> CategoryMapping:
        """Parse and check a mapping; raise :class:`BlocklistError` naming the file and line.

        ``known`` are the kalkan ids a target may be (default: the built-in categories; pass
        the policy's ids when it defines its own).
        """
        ids = frozenset(known) if known is not None else DEFAULT_CATEGORY_IDS
        located = load_located(text, file, error=BlocklistError)
        data = located.data
        if data is None:
            raise BlocklistError("the category mapping is empty", file=file, line=1,
                                 hint="write one `source category: kalkan category` a line")
        if not isinstance(data, dict):
            raise BlocklistError("a category mapping is lines of `source category: kalkan "
                                 "category`", file=file, line=located.line_of(()))
        targets: dict[str, str | None] = {}
        for key, value in data.items():
            line = located.line_of((key,))
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise BlocklistError(f"{key!r} is not a category name", file=file, line=line,
                                     hint="put the name in quotes")
            if value is not None and not isinstance(value, str):
                hint = ("write null to leave the category out" if isinstance(value, bool)
                        else "write one kalkan category id, or null to leave it out")
                raise BlocklistError(f"{key}: {value!r} is not a kalkan category id",
                                     file=file, line=line, hint=hint)
            if value is not None and value not in ids:
                close = difflib.get_close_matches(value, sorted(ids), n=1)
                hint = (f"did you mean {close[0]}?" if close else
                        f"use one of: {', '.join(sorted(ids))}, or null to leave it out")
                raise BlocklistError(f"{key}: unknown kalkan category {value!r}", file=file,
                                     line=line, hint=hint)
            targets[str(key)] = value
        return cls(targets, name=file)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *,
             known: Iterable[str] | None = None) -> CategoryMapping:
        """Read a mapping file (see :meth:`from_yaml`)."""
        name = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise BlocklistError(f"cannot read the category mapping: {reason}",
                                 file=name) from None
        return cls.from_yaml(text, name, known=known)

    @classmethod
    def identity(cls, ids: Iterable[str]) -> CategoryMapping:
        """A mapping for lists that already use kalkan ids (CSV with the policy's categories)."""
        return cls({i: i for i in ids}, name="<kalkan categories>")

    def __getitem__(self, source_category: str) -> str | None:
        return self._targets[source_category]

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __repr__(self) -> str:
        return f"CategoryMapping({self.name!r}, {len(self)} categories)"


@functools.cache
def default_ut1_mapping() -> CategoryMapping:
    """The mapping shipped with kalkan for UT1 (``blocklists/mappings/ut1.yaml``)."""
    ref = resources.files("blocklists").joinpath("mappings/ut1.yaml")
    return CategoryMapping.from_yaml(ref.read_text(encoding="utf-8"),
                                     "blocklists/mappings/ut1.yaml")
