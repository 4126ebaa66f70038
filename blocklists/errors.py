"""Errors about a whole list or mapping file, as opposed to one bad line (which is only counted)."""

from __future__ import annotations

from policies.errors import SourceError


class BlocklistError(SourceError):
    """A list, archive or category mapping cannot be used at all: missing, corrupt, truncated,
    or a mapping that names an unknown category. The previous index stays in service."""
