"""Search terms that raise an alert, matched in the query of an inspected search URL."""

from __future__ import annotations

import re
from collections.abc import Iterable
from importlib import resources
from urllib.parse import parse_qsl, urlsplit

# The query parameter that holds the words, for the search engines students use here:
# Google/Bing/DuckDuckGo q, Yandex text, YouTube search_query, Mail.ru/Yahoo p, Baidu wd.
QUERY_KEYS = frozenset({"q", "text", "search_query", "query", "p", "wd", "search", "k"})
_WORD = re.compile(r"\w+", re.UNICODE)


def shipped_terms() -> list[str]:
    text = resources.files("gateway.alerts").joinpath("search_terms.txt").read_text("utf-8")
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def search_words(url: str) -> list[str] | None:
    """The words searched for in ``url``, lower case; None if it is not a search."""
    query = urlsplit(url).query
    if not query:
        return None
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key.lower() in QUERY_KEYS and value.strip():
            return _WORD.findall(value.lower())
    return None


class SearchTerms:
    """Each term is a sequence of word starts: ``how to make a bomb`` matches ``How to make
    a bomb?`` and ``порн`` matches ``порно``, so one entry covers a word's endings."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = [tuple(_WORD.findall(t.lower())) for t in terms]
        self.terms = [t for t in self.terms if t]
        self.first_words = frozenset(t[0] for t in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def match(self, url: str) -> str | None:
        """The first listed term that ``url`` searches for, or None."""
        if "?" not in url:
            return None
        words = search_words(url)
        if not words:
            return None
        for term in self.terms:
            n = len(term)
            for i in range(len(words) - n + 1):
                if all(words[i + k].startswith(term[k]) for k in range(n)):
                    return " ".join(term)
        return None
