"""What an importer yields and what it reports: the contract between importers and the index."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class EntryKind(StrEnum):
    DOMAIN = "domain"  # matches the name and every name below it
    IP = "ip"  # an IPv4/IPv6 literal, for the proxy (a request straight to an address)
    URL = "url"  # domain plus path prefix, e.g. UT1 ``urls`` files
    EXCEPTION = "exception"  # an allow entry inside a block list (AdBlock ``@@||…^``)


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One usable line of a list: a normalised name (A-labels, lower case, no trailing dot),
    the kalkan category it belongs to, and for URL entries the path prefix (starting with /)."""

    domain: str
    category: str
    kind: EntryKind = EntryKind.DOMAIN
    path: str | None = None

    @property
    def text(self) -> str:
        """The entry as lists and the policy write it: ``lib.kg`` or ``lib.kg/books``."""
        return self.domain + (self.path or "")


@dataclass
class ImportReport:
    """Counts for one source, so nothing is silently lost: every line is accepted, skipped
    (a comment, a blank, a rule type kalkan does not use) or invalid (with examples)."""

    source: str
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason → count
    invalid: int = 0
    invalid_examples: list[tuple[str, int, str, str]] = field(default_factory=list)
    # (file, line number, the line, why)
    per_category: dict[str, int] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)  # source category → lines left out
    aliases: dict[str, str] = field(default_factory=dict)
    # source category → the category it is a link to (UT1 ``violence`` → ``agressif``): read once

    MAX_EXAMPLES = 10

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def reject(self, file: str, number: int, line: str, why: str) -> None:
        self.invalid += 1
        if len(self.invalid_examples) < self.MAX_EXAMPLES:
            self.invalid_examples.append((file, number, line[:200], why))

    def accept(self, entry: ListEntry) -> None:
        self.accepted += 1
        self.per_category[entry.category] = self.per_category.get(entry.category, 0) + 1
