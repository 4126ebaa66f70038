"""Safe search inside decrypted (or plain HTTP) traffic: the query parameter each search engine
documents, and YouTube's ``YouTube-Restrict`` header, for groups that have the switch on.

The resolver already answers search engines with their safe hosts (``gateway/dns``); that does
not help when a browser reaches the engine by another name or keeps a connection open, and the
parameters are what the engines themselves honour. Like the DNS's ``safe_search.txt``, the rules
are data: one row per engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mitmproxy import http

from gateway.proxy.http_policy import DECISION
from policies.engine import Engine


@dataclass(frozen=True, slots=True)
class SearchRule:
    engine: str
    host: re.Pattern[str]
    paths: tuple[str, ...]  # path prefixes where the engine reads the parameter
    param: str
    value: str


RULES = (
    # Google: support.google.com/websearch/answer/510, "safe=active" locks SafeSearch.
    SearchRule("google", re.compile(r"(www\.)?google\.[a-z]{2,3}(\.[a-z]{2})?"),
               ("/search", "/images", "/webhp", "/complete/search"), "safe", "active"),
    # Bing: "adlt=strict" is strict SafeSearch.
    SearchRule("bing", re.compile(r"(www\.)?bing\.com"), ("/search", "/images", "/videos"),
               "adlt", "strict"),
    # DuckDuckGo: "kp=1" is strict safe search.
    SearchRule("duckduckgo", re.compile(r"(html\.|lite\.)?duckduckgo\.com"), ("/",), "kp", "1"),
    # Yandex: "family=yes" is the family search filter.
    SearchRule("yandex", re.compile(r"(www\.)?(yandex\.(ru|kz|uz|com|by)|ya\.ru)"),
               ("/search", "/images", "/video"), "family", "yes"),
)

# support.google.com/a/answer/6214622: the header YouTube reads on every request.
YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com",
                           "youtubei.googleapis.com", "youtube.googleapis.com",
                           "www.youtube-nocookie.com"})
YOUTUBE_HEADER = "YouTube-Restrict"
YOUTUBE_VALUES = {"strict": "Strict", "moderate": "Moderate"}


def search_rule_for(host: str, path: str) -> SearchRule | None:
    """The rule for a search request to ``host`` ``path``, or None."""
    for rule in RULES:
        if rule.host.fullmatch(host) and path.startswith(rule.paths):
            return rule
    return None


class SafeSearchAddon:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response:
            return  # blocked or answered: nothing goes upstream
        decision = flow.metadata.get(DECISION)
        if decision is None or decision.blocked:
            return
        group = self.engine.snapshot.groups.get(decision.group or "")
        if group is None:
            return
        req = flow.request
        host = req.pretty_host.lower()
        if host in YOUTUBE_HOSTS:
            value = YOUTUBE_VALUES.get(str(group.youtube))
            if value:
                req.headers[YOUTUBE_HEADER] = value
            return
        if group.safe_search:
            rule = search_rule_for(host, req.path)
            if rule is not None and req.query.get(rule.param) != rule.value:
                req.query[rule.param] = rule.value  # replaces a "safe=off" the page put there
