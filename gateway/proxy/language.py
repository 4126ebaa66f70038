"""The block page's languages: one message catalog per language, and the choice among them.

The catalogs are YAML files in ``messages/`` beside this module (``ky.yaml``, ``ru.yaml``,
``kk.yaml``, ``uz.yaml`` in Latin script, ``en.yaml``), every file with the same keys, so that
a translator edits one file and needs no tools. The browser's ``Accept-Language`` chooses the
language; the school's default (``language`` in kalkan.yaml) answers when the browser asks for
none of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import yaml

from policies.categories import DEFAULT_CATEGORIES, LANGUAGES

# Russian is the second language of every school in the region: a browser set to Belarusian or
# Ukrainian reads it more easily than the school default when that is Kyrgyz or Uzbek.
_NEIGHBOURS = {"be": "ru", "uk": "ru", "tg": "ru", "tk": "ru", "tr": "uz", "qaa": "en"}


class Catalog(Mapping[str, Any]):
    """The messages of one language; ``text(key, **values)`` fills in ``{placeholders}``."""

    def __init__(self, language: str, messages: Mapping[str, Any]) -> None:
        self.language = language
        self._messages = messages

    def __getitem__(self, key: str) -> Any:
        return self._messages[key]

    def __iter__(self):
        return iter(self._messages)

    def __len__(self) -> int:
        return len(self._messages)

    def text(self, key: str, **values: object) -> str:
        return str(self._messages[key]).format(**values)

    def reason(self, reason: str) -> str:
        return self._messages["reason"].get(reason, self._messages["reason"]["group_default"])


@cache
def catalog(language: str) -> Catalog:
    """The catalog of ``language`` (one of :data:`LANGUAGES`), read once per process."""
    if language not in LANGUAGES:
        raise KeyError(f"no catalog for language {language!r}")
    text = resources.files("gateway.proxy").joinpath(f"messages/{language}.yaml").read_text(
        encoding="utf-8")
    return Catalog(language, yaml.safe_load(text))


def pick_language(accept_language: str | None, default: str = "ky",
                  override: str | None = None) -> str:
    """The best of our languages for an ``Accept-Language`` header, else ``default``.

    ``override`` (the language link on the page) wins when it is one of ours. Quality values
    are honoured; ``ru-KG`` counts as ``ru``; ``uz-Cyrl`` counts as ``uz`` (the Latin catalog is
    the official script and the only one we ship).
    """
    if override in LANGUAGES:
        return override
    best, best_q = None, 0.0
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-", 1)[0]
        primary = primary if primary in LANGUAGES else _NEIGHBOURS.get(primary, "")
        if not primary:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        q -= position * 1e-6  # equal qualities: the browser's order decides
        if q > best_q:
            best, best_q = primary, q
    return best or (default if default in LANGUAGES else "en")


@cache
def category_names() -> dict[str, dict[str, str]]:
    """Translated names of the categories kalkan ships: category id → language → name."""
    return {c.id: dict(c.names) for c in DEFAULT_CATEGORIES}


def category_name(category: str | None, language: str,
                  names: Mapping[str, Mapping[str, str]] | None = None) -> str | None:
    """The category's name in ``language`` (the policy's own names first), else its id."""
    if not category:
        return None
    for table in (names or {}, category_names()):
        entry = table.get(category)
        if entry:
            return entry.get(language) or entry.get("en") or category
    return category
