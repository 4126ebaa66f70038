"""AdBlock-style lists (Adblock Plus, uBlock Origin, AdGuard): the whole-domain rules only.

``||example.com^`` blocks a domain and everything below it, which is exactly a kalkan domain
entry; ``@@||example.com^`` becomes an exception (an allow entry inside the list). Every other
rule type is skipped and counted under its kind, so a report shows what the list held that a
DNS filter cannot use:

- options that narrow a rule (``$third-party``, ``$script``, ``$domain=…``): a rule that
  blocks scripts from a domain is not a block of the domain. ``$important``, ``$all`` and
  ``$document`` do not narrow it and are accepted;
- element hiding and other cosmetic rules (``##``, ``#@#``, ``#?#``, ``#$#``, ``#%#``), HTML
  filters (``$$``), regular expressions (``/…/``), URL rules (``/ads/banner``,
  ``|http://…``, ``||example.com/path``), ``*`` inside a host name;
- ``!`` comments and the ``[Adblock Plus 2.0]`` header.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from blocklists.entries import EntryKind, ImportReport, ListEntry
from blocklists.importers.common import (
    FirstSeen,
    Source,
    check_category,
    check_source,
    iter_lines,
    open_source,
    parse_host,
)
from policies.domain import InvalidDomain

WHOLE_SITE_OPTIONS = frozenset({"important", "all", "document", "doc"})

COMMENT = "comment"
HEADER = "header"
ELEMENT_HIDING = "element hiding"
HTML_FILTER = "html filtering"
REGEX = "regex rule"
OPTIONS = "rule with options"
URL_RULE = "url rule"
WILDCARD = "wildcard in a host name"

_COSMETIC = re.compile(r"#@?(?:\$\??|%|\?)?#")


def read_adblock(source: Source, *, category: str,
                 report: ImportReport) -> Iterator[ListEntry]:
    """Entries of an AdBlock-style list, all in ``category``: domain (or IP) entries for
    ``||name^`` rules and exception entries for ``@@||name^``."""
    check_category(category)
    check_source(source)
    return _read(source, category, report)


def classify(rule: str) -> str | tuple[EntryKind, str]:
    """The skip reason for a rule kalkan does not use, or ``(kind, host)`` for a whole-domain
    rule (the host not yet normalised). ``rule`` is stripped and not blank."""
    if rule[0] == "!":
        return COMMENT
    if rule[0] == "[" and rule[-1] == "]":
        return HEADER
    if _COSMETIC.search(rule):
        return ELEMENT_HIDING
    if "$$" in rule or "$@$" in rule:
        return HTML_FILTER
    if rule[0] == "#":
        return COMMENT  # hosts-style comments, which AdGuard lists use
    exception = rule.startswith("@@")
    body = rule[2:] if exception else rule
    if body.startswith("/"):
        return REGEX if len(body) > 1 and (body.endswith("/") or "/$" in body) else URL_RULE
    pattern, dollar, options = body.rpartition("$")
    if not dollar:
        pattern = body
    elif not {o.strip().lower() for o in options.split(",")} <= WHOLE_SITE_OPTIONS:
        return OPTIONS
    if not pattern.startswith("||"):
        return URL_RULE
    host = pattern[2:]
    for end in ("^|", "^", "|"):
        if host.endswith(end):
            host = host[: -len(end)]
            break
    if any(c in host for c in "/^:|"):
        return URL_RULE
    host = host.removeprefix("*.")
    if "*" in host:
        return WILDCARD
    return EntryKind.EXCEPTION if exception else EntryKind.DOMAIN, host


def _read(source: Source, category: str, report: ImportReport) -> Iterator[ListEntry]:
    first_seen = FirstSeen(report)
    with open_source(source, report) as (stream, name):
        for number, text in iter_lines(stream, name, report):
            if not text:
                report.skip("blank")
                continue
            rule = classify(text)
            if isinstance(rule, str):
                report.skip(rule)
                continue
            kind, host = rule
            try:
                host_kind, host = parse_host(host)
            except InvalidDomain as exc:
                report.reject(name, number, text, exc.message)
                continue
            if kind is not EntryKind.EXCEPTION:
                kind = host_kind  # an IP literal in ||1.2.3.4^ is an IP entry
            entry = ListEntry(host, category, kind)
            if first_seen(entry):
                yield entry
