"""Safe-search targets are data: the file covers what the issue names, and reads strictly."""

from __future__ import annotations

import pytest
from dns_harness import ask, records

from gateway.dns.safe_search import SafeSearchConfig, SafeSearchFileError, parse_targets

pytest_plugins = ["dns_fixtures"]

SHIPPED = SafeSearchConfig.load()


@pytest.mark.parametrize(("name", "target"), [
    ("google.kg", "forcesafesearch.google.com"),
    ("www.google.kg", "forcesafesearch.google.com"),
    ("google.kz", "forcesafesearch.google.com"),
    ("www.google.co.uz", "forcesafesearch.google.com"),
    ("google.ru", "forcesafesearch.google.com"),
    ("www.google.com", "forcesafesearch.google.com"),
    ("www.google.com.tj", "forcesafesearch.google.com"),
    ("www.bing.com", "strict.bing.com"),
    ("duckduckgo.com", "safe.duckduckgo.com"),
    ("yandex.ru", "familysearch.yandex.ru"),
    ("www.yandex.kz", "familysearch.yandex.ru"),
    ("yandex.uz", "familysearch.yandex.ru"),
    ("yandex.com", "familysearch.yandex.ru"),
    ("ya.ru", "familysearch.yandex.ru"),
])
def test_the_shipped_file_covers_the_search_engines_of_the_region(name, target):
    assert SHIPPED.search[name] == target


@pytest.mark.parametrize("name", ["www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                                  "youtube.googleapis.com", "www.youtube-nocookie.com"])
def test_youtube_has_both_restriction_levels(name):
    assert SHIPPED.youtube_strict[name] == "restrict.youtube.com"
    assert SHIPPED.youtube_moderate[name] == "restrictmoderate.youtube.com"


def test_names_match_exactly_not_by_suffix():
    assert "mail.google.kg" not in SHIPPED.names
    assert "youtube.com" not in SHIPPED.youtube_strict


@pytest.mark.parametrize(("text", "error"), [
    ("google.kg forcesafesearch.google.com", r"safe_search.txt:1: .* under a \[section\]"),
    ("[search]\ngoogle.kg", "safe_search.txt:2: expected `name target`"),
    ("[search]\na b c", "expected `name target`"),
    ("[youtube:lenient]\nx y", "unknown section"),
])
def test_a_bad_line_is_refused_with_its_line_number(text, error):
    with pytest.raises(SafeSearchFileError, match=error):
        parse_targets(text, "safe_search.txt")


def test_comments_case_and_trailing_dots_are_forgiven():
    config = parse_targets("# comment\n[search]\n  WWW.Google.KG.  ForceSafeSearch.Google.com. "
                           " # why\n")
    assert dict(config.search) == {"www.google.kg": "forcesafesearch.google.com"}


def test_a_target_that_is_an_address_is_answered_as_that_address(start_server, tmp_path):
    targets = tmp_path / "targets.txt"
    targets.write_text("[search]\nyandex.kz 213.180.193.56\n")
    server = start_server(safe_search_file=targets)
    assert records(ask(server, "yandex.kz")) == ["A 213.180.193.56"]
    assert records(ask(server, "yandex.kz", "AAAA")) == []
