"""Importers and the category mapping, on the real-data excerpts in tests/data/ (and on the
whole shared UT1 tarball when it is there)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import pytest

from blocklists.entries import EntryKind, ImportReport, ListEntry
from blocklists.errors import BlocklistError
from blocklists.importers import (
    read_adblock,
    read_csv,
    read_hosts,
    read_list,
    read_plain,
    read_ut1,
)
from blocklists.importers.adblock import classify
from blocklists.mapping import DEFAULT_CATEGORY_IDS, CategoryMapping, default_ut1_mapping

DATA = Path(__file__).resolve().parent.parent / "data"
UT1 = DATA / "ut1"
SHARED_TARBALL = Path(__file__).resolve().parents[3] / "shared/data/ut1/blacklists.tar.gz"

D, IP, URL, EXC = EntryKind.DOMAIN, EntryKind.IP, EntryKind.URL, EntryKind.EXCEPTION


def read(entries: Iterable[ListEntry]) -> list[ListEntry]:
    return list(entries)


def plain(data: bytes | str, category: str = "doh") -> tuple[list[ListEntry], ImportReport]:
    report = ImportReport("test")
    stream = io.BytesIO(data) if isinstance(data, bytes) else io.StringIO(data)
    return read(read_plain(stream, category=category, report=report)), report


def ut1(source: object, mapping: CategoryMapping | None = None,
        ) -> tuple[list[ListEntry], ImportReport]:
    report = ImportReport("ut1")
    return read(read_ut1(source, mapping=mapping, report=report)), report  # type: ignore[arg-type]


def why(report: ImportReport) -> list[tuple[int, str]]:
    return [(number, reason) for _, number, _, reason in report.invalid_examples]


# --- normalisation: the same for every format -------------------------------------------------

@pytest.mark.parametrize(("line", "kind", "name"), [
    ("example.com", D, "example.com"),
    ("Example.COM", D, "example.com"),
    ("example.com.", D, "example.com"),
    ("мектеп.kg", D, "xn--e1aaogsq.kg"),
    ("МЕКТЕП.KG.", D, "xn--e1aaogsq.kg"),
    ("XN--E1AAOGSQ.kg", D, "xn--e1aaogsq.kg"),
    ("*.x.com", D, "x.com"),  # a suffix match is what every entry means
    (".x.com", D, "x.com"),
    ("www.x.com", D, "www.x.com"),  # www. is a name of its own, not stripped
    ("0----0.0x28.com", D, "0----0.0x28.com"),  # real UT1 redirector line
    ("_dmarc.x.com", D, "_dmarc.x.com"),
    ("118.123.4.224", IP, "118.123.4.224"),
    ("2001:DB8::1", IP, "2001:db8::1"),
    ("[2001:db8::1]", IP, "2001:db8::1"),
])
def test_names_are_normalised(line: str, kind: EntryKind, name: str) -> None:
    entries, report = plain(f"{line}\n".encode())
    assert entries == [ListEntry(name, "doh", kind)]
    assert report.per_category == {"doh": 1}


@pytest.mark.parametrize(("line", "reason"), [
    ("bad..name.com", "empty label"),
    ("com", "single label"),  # would put a whole top-level domain in the category
    ("1.2.3.999", "looks like an IP address"),
    ("010.1.1.1", "looks like an IP address"),
    ("a" * 64 + ".com", "longer than 63"),
    ("http://x.com/", "neither a host name"),
    ("a*.x.com", "character"),
    ("*.", "empty"),
    ("10.0.0.0/8", "character"),
    ("a.com b.com", "more than one name"),
])
def test_invalid_names_are_counted_with_line_and_reason(line: str, reason: str) -> None:
    entries, report = plain(f"ok.example\n{line}\nalso-ok.example\n".encode())
    assert [e.domain for e in entries] == ["ok.example", "also-ok.example"]
    assert report.invalid == 1
    [(file, number, text, message)] = report.invalid_examples
    assert (file, number, text) == ("test", 2, line)
    assert reason in message


def test_undecodable_bytes_make_the_line_invalid_not_the_file() -> None:
    entries, report = plain(b"ok.example\n\xff\xfebad.example\nfine.kg\n")
    assert [e.domain for e in entries] == ["ok.example", "fine.kg"]
    assert why(report) == [(2, "not valid UTF-8 (is the file in another encoding?)")]
    assert "\ufffd" in report.invalid_examples[0][2]  # shown with the replacement character


def test_examples_are_capped_but_every_invalid_line_is_counted() -> None:
    _, report = plain(b"bad..x\n" * 50)
    assert report.invalid == 50
    assert len(report.invalid_examples) == ImportReport.MAX_EXAMPLES


# --- plain lists ------------------------------------------------------------------------------

def test_plain_doh_excerpt() -> None:
    report = ImportReport("doh-domains")
    entries = read(read_plain(DATA / "doh-domains.txt", category="doh", report=report))
    assert len(entries) == 40
    assert entries[0] == ListEntry("003153.xyz", "doh")
    assert ListEntry("1dot1dot1dot1.cloudflare-dns.com", "doh") in entries
    assert report.lines == 41
    assert report.skipped == {"comment": 1}  # the # SOURCE header
    assert (report.accepted, report.invalid, report.duplicates) == (40, 0, 0)


def test_plain_comments_whitespace_bom_and_duplicates() -> None:
    text = ("\ufeff# header\n\n   a.example   \t# trailing note\n*.b.example\n"
            "B.Example.\n\t\n# end\n")
    entries, report = plain(text.encode())
    assert entries == [ListEntry("a.example", "doh"), ListEntry("b.example", "doh")]
    assert report.duplicates == 1
    assert report.skipped == {"comment": 2, "blank": 2}
    assert report.lines == 7


def test_text_streams_are_read_too() -> None:
    entries, _ = plain("a.example\nмектеп.kg\n")
    assert [e.domain for e in entries] == ["a.example", "xn--e1aaogsq.kg"]


def test_gzip_lists_are_read_and_a_truncated_one_is_an_error(tmp_path: Path) -> None:
    data = (DATA / "doh-domains.txt").read_bytes() * 20
    whole = tmp_path / "doh.txt.gz"
    whole.write_bytes(gzip.compress(data))
    report = ImportReport("gz")
    assert len(read(read_plain(whole, category="doh", report=report))) == 40
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(BlocklistError, match="truncated or corrupt") as caught:
        read(read_plain(cut, category="doh", report=ImportReport("cut")))
    assert "download it again" in str(caught.value)


def test_source_errors_are_raised_at_the_call(tmp_path: Path) -> None:
    report = ImportReport("x")
    with pytest.raises(BlocklistError, match="no such file"):
        read_plain(tmp_path / "missing.txt", category="doh", report=report)
    with pytest.raises(BlocklistError, match="not a kalkan category id"):
        read_hosts(DATA / "hosts", category="Proxy VPN", report=report)
    with pytest.raises(BlocklistError, match="no such file"):
        read_ut1(tmp_path / "missing.tar.gz", report=report)


# --- hosts files ------------------------------------------------------------------------------

def test_hosts_excerpt() -> None:
    report = ImportReport("hosts")
    entries = read(read_hosts(DATA / "hosts", category="malware", report=report))
    assert entries == [ListEntry(name, "malware", kind) for name, kind in [
        ("0-1-x.009418154.xyz", D), ("0-1-x.06215785.xyz", D), ("0-1-x.15170956.xyz", D),
        ("0-1-x.16215785.xyz", D), ("0000000069.com", D), ("0000000888.weebly.com", D),
        ("0006usdt.com", D), ("01xmrpool.com", D), ("a.doko.moe", D), ("101.33.243.139", IP),
    ]]
    # localhost ×3, localhost.localdomain, local, broadcasthost, ip6-* ×8, 0.0.0.0
    assert report.skipped["hosts boilerplate"] == 14
    assert report.skipped["hosts redirect (not a block address)"] == 2  # SafeSearch, not a block
    assert report.duplicates == 1
    assert why(report) == [
        (36, "an address without any names"),
        (37, "'bad..name.example' has an empty label (two dots in a row?)"),
        (38, "'ads.example.com' is not an address (a hosts line is an address, then names)"),
    ]


# --- AdBlock lists ----------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "expected"), [
    ("||example.com^", (D, "example.com")),
    ("||example.com", (D, "example.com")),
    ("||example.com^|", (D, "example.com")),
    ("||*.example.com^", (D, "example.com")),
    ("||example.com^$important", (D, "example.com")),
    ("||example.com^$document,important", (D, "example.com")),
    ("||example.com^$all", (D, "example.com")),
    ("@@||allowed.example^", (EXC, "allowed.example")),
    ("@@||allowed.example^$document", (EXC, "allowed.example")),
    ("||example.com^$third-party", "rule with options"),
    ("||example.com^$~third-party", "rule with options"),
    ("||example.com^$script,domain=a.kg|b.kg", "rule with options"),
    ("||example.com^$dnstype=AAAA", "rule with options"),
    ("@@||example.com^$generichide", "rule with options"),
    ("||ads*.example.com^", "wildcard in a host name"),
    ("||example.*^", "wildcard in a host name"),
    ("example.com##.ad", "element hiding"),
    ("##.sponsored", "element hiding"),
    ("example.com#@#.ad", "element hiding"),
    ("example.com#?#div:-abp-has(.ad)", "element hiding"),
    ("example.com#$#abort-on-property-read x", "element hiding"),
    ("example.com#%#window.x=1", "element hiding"),
    ("example.com$$script[tag-content=x]", "html filtering"),
    ("/banner[0-9]+\\.gif/", "regex rule"),
    ("/^https?:\\/\\/ads\\./$script", "regex rule"),
    ("/ads/banner", "url rule"),
    ("|http://example.com/ad.js", "url rule"),
    ("||example.com/ads/*.js", "url rule"),
    ("||example.com^*/ads", "url rule"),
    ("||example.com:8080^", "url rule"),
    ("-ad-banner.", "url rule"),
    ("example.com", "url rule"),  # unanchored: a substring of any URL, not a domain rule
    ("! Title: EasyList", "comment"),
    ("# hosts-style comment", "comment"),
    ("[Adblock Plus 2.0]", "header"),
])
def test_adblock_rule_types(rule: str, expected: object) -> None:
    assert classify(rule) == expected


def test_adblock_excerpt() -> None:
    report = ImportReport("adblock")
    entries = read(read_adblock(DATA / "adblock.txt", category="malware", report=report))
    assert entries == [ListEntry(name, "malware", kind) for name, kind in [
        ("0-1-x.009418154.xyz", D), ("0-1-x.06215785.xyz", D), ("01xmrpool.com", D),
        ("02giga.link", D), ("0629.123unlock.nl", D), ("0769.it", D), ("xn--e1aaogsq.kg", D),
        ("101.33.243.139", IP), ("allowed.0880.ml", EXC), ("cdn.01crypto.net", EXC),
    ]]
    assert report.skipped == {
        "header": 1, "comment": 8, "rule with options": 3, "wildcard in a host name": 1,
        "element hiding": 5, "html filtering": 1, "regex rule": 1, "url rule": 4,
    }
    assert report.duplicates == 2  # мектеп.kg after XN--E1AAOGSQ.KG, and a repeated rule
    assert why(report) == [(36, "'bad..name.example' has an empty label (two dots in a row?)")]
    assert report.lines == 37
    assert report.lines == (report.accepted + report.duplicates + report.invalid
                            + sum(report.skipped.values()))


# --- CSV --------------------------------------------------------------------------------------

def test_csv_excerpt_with_header_quotes_and_kalkan_ids() -> None:
    report = ImportReport("csv")
    entries = read(read_csv(DATA / "categories.csv", report=report))
    assert entries == [
        ListEntry("0-1-x.009418154.xyz", "malware"),
        ListEntry("0000usdtvip.com", "phishing"),
        ListEntry("mathador.fr", "education"),
        ListEntry("lib.kg", "education", URL, "/books"),
        ListEntry("118.123.4.224", "violence", IP),
        ListEntry("xn--e1aaogsq.kg", "education"),
    ]
    assert report.skipped == {"header": 1}
    assert report.duplicates == 1
    assert why(report) == [
        (8, "unknown category 'cryptomining' (not a kalkan category; give the import a "
            "mapping)"),
        (9, "'bad..name.example' has an empty label (two dots in a row?)"),
        (10, "expected a domain and a category"),
    ]


def test_csv_semicolons_no_header_and_a_mapping() -> None:
    # Excel in a Russian locale writes ; between cells; the categories here are UT1's.
    text = "14words.com;agressif\nmail.example.com;webmail\nx.example;nosuch\n"
    report = ImportReport("csv")
    entries = read(read_csv(io.BytesIO(text.encode()), mapping=default_ut1_mapping(),
                            report=report))
    assert entries == [ListEntry("14words.com", "violence")]
    assert report.skipped == {"left out by the mapping (webmail)": 1}
    assert why(report) == [
        (3, "unknown category 'nosuch' (not in the mapping blocklists/mappings/ut1.yaml)")]


@pytest.mark.parametrize(("first_row", "header"), [
    ("domain,category", True),
    ("Host;Kategoriya", True),
    ("site\tcategory", True),
    ('"domain","category"', True),
    ("a.example,adult", False),
    ("118.123.4.224;violence", False),
    ("2001:db8::1,malware", False),
])
def test_csv_header_detection(first_row: str, header: bool) -> None:
    report = ImportReport("csv")
    delimiter = next(d for d in ",;\t" if d in first_row)
    read(read_csv(io.StringIO(f"{first_row}\nb.example{delimiter}adult\n"), report=report))
    assert report.skipped.get("header", 0) == int(header)
    assert report.accepted == (1 if header else 2)


def test_csv_with_the_policys_own_categories() -> None:
    mapping = CategoryMapping.identity([*DEFAULT_CATEGORY_IDS, "olympiads"])
    report = ImportReport("csv")
    entries = read(read_csv(io.StringIO("olymp.kg,olympiads\n"), mapping=mapping,
                            report=report))
    assert entries == [ListEntry("olymp.kg", "olympiads")]


# --- the category mapping ---------------------------------------------------------------------

def test_default_ut1_mapping_decisions() -> None:
    m = default_ut1_mapping()
    assert m["agressif"] == m["violence"] == "violence"
    assert m["redirector"] == m["strong_redirector"] == m["vpn"] == "proxy_vpn"
    assert m["drogue"] == "drugs"
    assert m["cryptojacking"] == "malware"
    assert m["educational_games"] == "education"
    assert m["download"] == "warez"
    assert m["webmail"] is None
    assert set(m.values()) - {None} <= DEFAULT_CATEGORY_IDS


def test_default_ut1_mapping_names_every_category_of_the_excerpt() -> None:
    categories = {p.name for p in (UT1 / "blacklists").iterdir()}
    assert categories <= set(default_ut1_mapping())


@pytest.mark.parametrize(("text", "line", "message", "hint"), [
    ("adult: adult\nagressif: violense\n", 2, "unknown kalkan category 'violense'",
     "did you mean violence?"),
    ("adult: adult\nwebmail: no\n", 2, "webmail: False is not a kalkan category id",
     "write null"),
    ("adult: [adult, violence]\n", 1, "is not a kalkan category id", "one kalkan category"),
    ("- adult\n- violence\n", 1, "lines of `source category: kalkan category`", None),
    ("adult: adult\n\nadult: violence\n", 3, "'adult' appears twice", "keep one"),
    ("adult: adult\n  drogue: drugs\n", 2, "not valid YAML", "indentation"),
    ("# nothing yet\n", 1, "the category mapping is empty", "one `source category"),
])
def test_mapping_errors_name_the_line(text: str, line: int, message: str,
                                      hint: str | None) -> None:
    with pytest.raises(BlocklistError) as caught:
        CategoryMapping.from_yaml(text, "my-ut1.yaml")
    error = caught.value
    assert (error.file, error.line) == ("my-ut1.yaml", line)
    assert message in error.message
    if hint:
        assert hint in (error.hint or "")
    assert str(error).startswith(f"my-ut1.yaml:{line}: ")


def test_mapping_file_known_ids_and_null(tmp_path: Path) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("# mine\nagressif: violence\nsport: olympiads\nwebmail: ~\n123: adult\n",
                    encoding="utf-8")
    with pytest.raises(BlocklistError, match="unknown kalkan category 'olympiads'") as caught:
        CategoryMapping.load(path)
    assert (caught.value.file, caught.value.line) == (str(path), 3)
    m = CategoryMapping.load(path, known=[*DEFAULT_CATEGORY_IDS, "olympiads"])
    assert dict(m) == {"agressif": "violence", "sport": "olympiads", "webmail": None,
                       "123": "adult"}
    assert "webmail" in m and m["webmail"] is None and "games" not in m
    with pytest.raises(BlocklistError, match="cannot read"):
        CategoryMapping.load(tmp_path / "missing.yaml")


# --- UT1 --------------------------------------------------------------------------------------

def lines_in(root: Path) -> int:
    """Physical lines of the real list files (symlinked categories not counted again)."""
    return sum(len(p.read_bytes().splitlines()) for p in root.glob("*/*")
               if not p.parent.is_symlink() and p.name in ("domains", "urls"))


def test_ut1_directory_excerpt() -> None:
    entries, report = ut1(UT1)
    assert report.aliases == {"violence": "agressif", "strong_redirector": "redirector"}
    assert report.lines == lines_in(UT1 / "blacklists")  # each file read once
    # agressif and its alias violence both map to violence: 12 domains + 12 urls, not twice
    assert report.per_category["violence"] == 24
    assert report.per_category["proxy_vpn"] == 16 + 6  # redirector + vpn; not 2 × redirector
    assert report.per_category["malware"] == 9 + 7 - 1  # a.doko.moe is in cryptojacking too
    assert report.duplicates == 1
    assert report.per_category["education"] == 8  # educational_games
    assert report.skipped == {"left out by the mapping (webmail)": 6}
    assert (report.unmapped, report.invalid) == ({}, 0)
    assert report.lines == (report.accepted + report.duplicates + report.invalid
                            + sum(report.skipped.values()))
    assert Counter(e.kind for e in entries) == {D: 63, IP: 23, URL: 13 + 12}
    assert ListEntry("118.123.4.224", "violence", IP) in entries
    assert ListEntry("14words.com", "violence") in entries
    assert ListEntry("1.0.255.159", "proxy_vpn", IP) in entries


@pytest.mark.parametrize(("line", "domain", "path"), [
    ("archive.org/details/qatal3", "archive.org", "/details/qatal3"),  # not all of archive.org
    ("129.105.212.34/~abutz", "129.105.212.34", "/~abutz"),
    ("178.128.25.172/watch", "178.128.25.172", "/watch"),
    ("1banglaxxx.com/en/", "1banglaxxx.com", "/en/"),
    ("brujildasexy.es/?v=da7f24de4c8e", "brujildasexy.es", "/?v=da7f24de4c8e"),
    ("ckl4vcnhwzyszdarrxpvdru4b4.naitang2.top//?v=1771907999224i5g18b4fl5",
     "ckl4vcnhwzyszdarrxpvdru4b4.naitang2.top", "//?v=1771907999224i5g18b4fl5"),
    ("danskporn.dk/#p2", "danskporn.dk", "/"),
    ("gosexy.it/index.php?", "gosexy.it", "/index.php"),
    ("playfetish.com/en#", "playfetish.com", "/en"),
])
def test_ut1_urls_become_url_entries(line: str, domain: str, path: str) -> None:
    entries, _ = ut1(UT1)
    category = "adult" if (UT1 / "blacklists/adult/urls").read_text().count(line) else "violence"
    assert ListEntry(domain, category, URL, path) in entries


def test_ut1_root_blacklists_or_one_category(tmp_path: Path) -> None:
    whole, _ = ut1(UT1)
    assert ut1(UT1 / "blacklists")[0] == whole
    one, report = ut1(UT1 / "blacklists" / "drogue")
    assert one == [e for e in whole if e.category == "drugs"]
    assert report.lines == 10
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BlocklistError, match="no UT1 category directories"):
        read_ut1(empty, report=report)  # at the call, before anything is read


def test_ut1_invalid_lines_name_the_file_and_line(tmp_path: Path) -> None:
    cat = tmp_path / "blacklists" / "agressif"
    cat.mkdir(parents=True)
    (cat / "domains").write_bytes(b"ok.example\nbad..example\nx.example/path\n\xffx.kg\n"
                                  b"# note\n\n")
    (cat / "urls").write_bytes(b"a.example/p q\nb.example:80x/p\n")
    (cat / "usage").write_bytes(b"black\n")
    entries, report = ut1(tmp_path)
    assert entries == [ListEntry("ok.example", "violence")]
    domains, urls = str(cat / "domains"), str(cat / "urls")
    assert [(f, n) for f, n, _, _ in report.invalid_examples] == [
        (domains, 2), (domains, 3), (domains, 4), (urls, 1), (urls, 2)]
    assert "a URL in a domains file" in report.invalid_examples[1][3]
    assert report.skipped == {"comment": 1, "blank": 1, "ut1 file not used": 1}


def test_ut1_unmapped_category_is_counted_not_lost(tmp_path: Path) -> None:
    shutil.copytree(UT1 / "blacklists" / "drogue", tmp_path / "drogue")
    (tmp_path / "newcat").mkdir()
    (tmp_path / "newcat" / "domains").write_text("a.example\nb.example\nc.example\n")
    entries, report = ut1(tmp_path)
    assert {e.category for e in entries} == {"drugs"}
    assert report.unmapped == {"newcat": 3}


def make_tarball(path: Path, members: list[tuple[str, bytes | str]]) -> Path:
    """A .tar.gz with the members in this order: bytes are files, str are symlink targets."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


class Pipe(io.RawIOBase):
    """A stream that cannot seek, like a download being read as it arrives."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_ut1_tarball_reads_like_the_directory(tmp_path: Path) -> None:
    tarball = tmp_path / "blacklists.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(UT1 / "blacklists", arcname="blacklists")  # symlinks stay symlinks
    with tarfile.open(tarball) as tar:
        assert any(m.issym() for m in tar.getmembers())
    expected, dir_report = ut1(UT1)
    sources: list[object] = [tarball, io.BytesIO(tarball.read_bytes()),
                             io.BufferedReader(Pipe(tarball.read_bytes()))]
    for source in sources:
        entries, report = ut1(source)
        assert sorted(entries, key=repr) == sorted(expected, key=repr)
        assert report.aliases == dir_report.aliases
        assert report.per_category == dir_report.per_category
        assert (report.lines, report.duplicates) == (dir_report.lines, dir_report.duplicates)


ALIAS_MAPPING = CategoryMapping({"agressif": "violence", "violence": "hatred"})


@pytest.mark.parametrize("link_first", [True, False])
def test_ut1_tar_alias_with_its_own_target_is_read_under_both(tmp_path: Path,
                                                               link_first: bool) -> None:
    files = [("blacklists/agressif/domains", b"a.example\nb.example\n"),
             ("blacklists/agressif/urls", b"c.example/x\n")]
    link = [("blacklists/violence", "agressif")]
    tarball = make_tarball(tmp_path / "t.tar.gz", link + files if link_first else files + link)
    for source in (tarball, io.BytesIO(tarball.read_bytes())):
        entries, report = ut1(source, ALIAS_MAPPING)
        assert {(e.text, e.category) for e in entries} == {
            (text, category) for text in ("a.example", "b.example", "c.example/x")
            for category in ("violence", "hatred")}
        assert report.lines == 3  # read again for the late link, but counted once
        assert report.aliases == {"violence": "agressif"}
    # A pipe cannot be read twice: a late link's lines are reported as left out.
    _, report = ut1(io.BufferedReader(Pipe(tarball.read_bytes())), ALIAS_MAPPING)
    if link_first:
        assert (report.per_category, report.unmapped) == ({"violence": 3, "hatred": 3}, {})
    else:
        assert (report.per_category, report.unmapped) == ({"violence": 3}, {"violence": 3})


def test_ut1_directory_alias_with_its_own_target() -> None:
    _, report = ut1(UT1, ALIAS_MAPPING)
    assert report.per_category == {"violence": 24, "hatred": 24}
    assert report.lines == lines_in(UT1 / "blacklists")
    assert set(report.unmapped) == {p.name for p in (UT1 / "blacklists").iterdir()} - {
        "agressif", "violence"}


def test_ut1_file_symlink_and_dangling_link(tmp_path: Path) -> None:
    tarball = make_tarball(tmp_path / "t.tar.gz", [
        ("blacklists/agressif/domains", b"a.example\n"),
        ("blacklists/violence/domains", "../agressif/domains"),
        ("blacklists/gone", "nowhere"),
    ])
    entries, report = ut1(tarball)
    assert entries == [ListEntry("a.example", "violence")]
    assert report.aliases == {"violence": "agressif"}
    assert report.skipped == {"ut1 symlink to a missing category": 1}


def test_ut1_broken_archives_are_errors(tmp_path: Path) -> None:
    tarball = tmp_path / "blacklists.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(UT1 / "blacklists", arcname="blacklists")
    data = tarball.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BlocklistError, match="truncated or corrupt") as caught:
        ut1(cut)
    assert caught.value.hint and "previous copy stays in service" in caught.value.hint
    not_tar = tmp_path / "domains.tar.gz"
    not_tar.write_bytes(b"a.example\nb.example\n")
    with pytest.raises(BlocklistError, match="not a tar archive"):
        read_ut1(not_tar, report=ImportReport("x"))  # at the call, for a path
    with pytest.raises(BlocklistError, match="not a tar archive"):
        ut1(io.BytesIO(not_tar.read_bytes()))


# --- the dispatcher ---------------------------------------------------------------------------

def test_read_list_dispatches_and_checks_its_arguments() -> None:
    report = ImportReport("x")
    assert len(read(read_list("plain", DATA / "doh-domains.txt", category="doh",
                              report=report))) == 40
    assert read(read_list("ut1", UT1, report=ImportReport("u")))
    with pytest.raises(BlocklistError, match="give a category"):
        read_list("hosts", DATA / "hosts", report=report)
    with pytest.raises(BlocklistError, match="give a mapping, not a category"):
        read_list("ut1", UT1, category="adult", report=report)
    with pytest.raises(BlocklistError, match="unknown list format 'squid'"):
        read_list("squid", UT1, report=report)


# --- the whole shared UT1 tarball -------------------------------------------------------------

def member_lines(tarball: Path) -> dict[str, int]:
    """Lines per list file in the tarball, straight from tarfile (the reference count)."""
    counts: dict[str, int] = {}
    with tarfile.open(tarball, "r|gz") as tar:
        for member in tar:
            if member.isfile() and member.name.rsplit("/", 1)[-1] in ("domains", "urls"):
                stream: IO[bytes] | None = tar.extractfile(member)
                assert stream is not None
                counts[member.name] = sum(1 for _ in stream)
    return counts


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_TARBALL.exists(), reason="../shared/data/ut1 is not here")
def test_the_whole_shared_ut1_tarball() -> None:
    report = ImportReport("ut1")
    started = time.perf_counter()
    kinds: Counter[EntryKind] = Counter()
    for entry in read_ut1(SHARED_TARBALL, report=report):
        kinds[entry.kind] += 1
    elapsed = time.perf_counter() - started
    assert elapsed < 15

    lines = member_lines(SHARED_TARBALL)
    assert report.lines == sum(lines.values())  # violence and strong_redirector not read again
    assert report.aliases == {"violence": "agressif", "strong_redirector": "redirector"}
    assert report.accepted > 700_000
    assert (report.unmapped, report.invalid) == ({}, 0)  # the mapping names every category
    per = report.per_category
    redirector, vpn = lines["blacklists/redirector/domains"], lines["blacklists/vpn/domains"]
    assert redirector < per["proxy_vpn"] <= redirector + vpn  # strong_redirector not doubled
    assert lines["blacklists/malware/domains"] < per["malware"] <= (
        lines["blacklists/malware/domains"] + lines["blacklists/cryptojacking/domains"])
    assert per["phishing"] == lines["blacklists/phishing/domains"]
    assert per["violence"] == lines["blacklists/agressif/domains"] + lines[
        "blacklists/agressif/urls"]
    # undressapp.ai/en is in adult/urls twice, once with a trailing #
    assert per["adult"] == lines["blacklists/adult/urls"] - 1 + lines[
        "blacklists/mixed_adult/domains"]
    assert report.skipped["left out by the mapping (webmail)"] == lines[
        "blacklists/webmail/domains"]
    assert kinds[EntryKind.IP] > 20_000  # redirector alone has ~22,500 IPv4 literals
    assert kinds[EntryKind.URL] == (per["adult"] - lines["blacklists/mixed_adult/domains"]
                                    + lines["blacklists/agressif/urls"])



@pytest.mark.skipif(not SHARED_TARBALL.exists(), reason="../shared/data/ut1 is not here")
def test_excerpt_lines_are_real_ut1_lines() -> None:
    # The checked-in excerpt must stay a faithful copy: every line is in the shared tarball.
    wanted: dict[str, set[bytes]] = {}
    root = UT1 / "blacklists"
    for path in root.glob("*/*"):
        if not path.parent.is_symlink():
            wanted[f"blacklists/{path.parent.name}/{path.name}"] = set(
                path.read_bytes().splitlines())
    with tarfile.open(SHARED_TARBALL, "r|gz") as tar:
        for member in tar:
            if member.name in wanted:
                stream = tar.extractfile(member)
                assert stream is not None
                wanted[member.name] -= set(stream.read().splitlines())
    assert all(not missing for missing in wanted.values()), wanted
    assert os.readlink(root / "violence") == "agressif"
