"""The memory-mapped domain index: suffix lookup, several lists per name, URL, IP and exception
entries, refusal of damaged files, atomic builds, and agreement with a naive reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blocklists.entries import EntryKind, ListEntry
from blocklists.errors import BlocklistError
from blocklists.index import DomainIndex, build_index, open_index
from blocklists.index_format import HEADER_SIZE
from policies.lookup import URL_DEPTH, CategoryMatch

D, IP, URL, EXC = EntryKind.DOMAIN, EntryKind.IP, EntryKind.URL, EntryKind.EXCEPTION
REPO = Path(__file__).resolve().parents[2]


def e(domain: str, category: str = "adult", kind: EntryKind = D,
      path: str | None = None) -> ListEntry:
    return ListEntry(domain, category, kind, path)


def build(tmp_path: Path, sources: dict[str, list[ListEntry]], name: str = "index.kbi"
          ) -> DomainIndex:
    path = tmp_path / name
    build_index(sources.items(), path)
    return open_index(path)


def m(category: str, entry: str, source: str = "ut1") -> CategoryMatch:
    domain = entry.split("/", 1)[0]
    depth = domain.count(".") + 1 + (URL_DEPTH if "/" in entry else 0)
    return CategoryMatch(category, entry, source, depth)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[DomainIndex]:
    with build(tmp_path, {
        "ut1": [e("example.kg"), e("example.kg", "gambling"), e("b.example.kg", "drugs"),
                e("casino.kz", "gambling"), e("xn--e1aaogsq.kg", "violence"),
                e("185.12.1.7", "malware", IP), e("lib.kg", "adult", URL, "/secret"),
                e("lib.kg", "violence", URL, "/secret/fights")],
        "regional": [e("example.kg", "adult"), e("bilimland.kz", "education")],
    }) as index:
        yield index


# --- matching -------------------------------------------------------------------------------

def test_a_host_matches_an_entry_for_itself_and_every_parent_domain(index: DomainIndex) -> None:
    assert index.lookup("casino.kz") == (m("gambling", "casino.kz"),)
    assert index.lookup("www.casino.kz") == (m("gambling", "casino.kz"),)
    assert index.lookup("a.b.c.casino.kz") == (m("gambling", "casino.kz"),)


def test_a_name_that_only_ends_with_the_same_letters_does_not_match(index: DomainIndex) -> None:
    assert index.lookup("notexample.kg") == ()
    assert index.lookup("www.notexample.kg") == ()
    assert index.lookup("kg") == ()
    assert index.lookup("example.kg.evil.com") == ()
    assert index.lookup("") == ()


def test_several_categories_and_sources_for_one_domain(index: DomainIndex) -> None:
    assert set(index.lookup("example.kg")) == {
        m("adult", "example.kg"), m("gambling", "example.kg"),
        m("adult", "example.kg", "regional")}


def test_most_specific_first(index: DomainIndex) -> None:
    found = index.lookup("x.b.example.kg")
    assert found[0] == m("drugs", "b.example.kg")
    assert {f.entry for f in found[1:]} == {"example.kg"}
    assert [f.depth for f in found] == [3, 2, 2, 2]


def test_url_entries_match_by_path_prefix_and_only_with_a_path(index: DomainIndex) -> None:
    assert index.lookup("lib.kg") == ()
    assert index.lookup("lib.kg", "/") == ()
    assert index.lookup("lib.kg", "/secret") == (m("adult", "lib.kg/secret"),)
    assert index.lookup("www.lib.kg", "/secret/fights/1") == (
        m("violence", "lib.kg/secret/fights"), m("adult", "lib.kg/secret"))
    assert index.lookup("lib.kg", "/public/secret") == ()


def test_ip_entries_match_only_the_address_itself(index: DomainIndex) -> None:
    assert index.lookup("185.12.1.7") == (m("malware", "185.12.1.7"),)
    assert index.lookup("9.185.12.1.7") == ()
    assert index.lookup("185.12.1.70") == ()
    assert index.lookup("12.1.7") == ()


def test_idn_entries_match_their_punycode_names(index: DomainIndex) -> None:
    # мектеп.kg; the engine hands lookup() A-labels (policies.domain.fast_normalise).
    assert index.lookup("xn--e1aaogsq.kg") == (m("violence", "xn--e1aaogsq.kg"),)
    assert index.lookup("www.xn--e1aaogsq.kg") == (m("violence", "xn--e1aaogsq.kg"),)
    assert index.lookup("xn--e1aaogsqq.kg") == ()


def test_an_exception_cancels_its_own_source_at_and_below_its_name(tmp_path: Path) -> None:
    with build(tmp_path, {
        "easylist": [e("ads.example", "ads"), e("example", "ads"), e("tracker.ads.example", "ads"),
                     e("ok.ads.example", "ads", EXC)],
        "other": [e("ads.example", "ads")],
    }) as index:
        # The exception's name and everything below it: the list's own parent entries go.
        assert index.lookup("ok.ads.example") == (m("ads", "ads.example", "other"),)
        assert index.lookup("cdn.ok.ads.example") == (m("ads", "ads.example", "other"),)
        # Above the exception nothing changes.
        assert set(index.lookup("ads.example")) == {
            m("ads", "ads.example", "easylist"), m("ads", "ads.example", "other"),
            m("ads", "example", "easylist")}
        # A more specific entry of the same list below the exception still applies.
        assert index.lookup("x.tracker.ads.example")[0] == m("ads", "tracker.ads.example",
                                                             "easylist")


def test_an_exception_also_cancels_url_entries_of_its_list_on_its_name(tmp_path: Path) -> None:
    with build(tmp_path, {"list": [e("lib.kg", "adult", URL, "/x"), e("lib.kg", "adult", EXC)]}
               ) as index:
        assert index.lookup("lib.kg", "/x") == ()


def test_one_label_entries_match_as_parents_too(tmp_path: Path) -> None:
    with build(tmp_path, {"tlds": [e("zip", "malware"), e("localhost", "internal")]}) as index:
        assert index.lookup("evil.zip") == (m("malware", "zip", "tlds"),)
        assert index.lookup("zip") == (m("malware", "zip", "tlds"),)
        assert index.lookup("localhost") == (m("internal", "localhost", "tlds"),)
        assert index.lookup("example.com") == ()


def test_an_empty_index_answers_nothing(tmp_path: Path) -> None:
    stats = build_index([], tmp_path / "empty.kbi")
    assert stats.domains == stats.entries == 0
    with open_index(tmp_path / "empty.kbi") as index:
        assert index.lookup("example.kg") == ()
        assert index.lookup("example.kg", "/path") == ()
        assert index.stats.per_source == {}


def test_stats_progress_and_duplicates(tmp_path: Path) -> None:
    seen: list[int] = []
    stats = build_index([("a", [e("x.kg"), e("x.kg"), e("y.kg", "drugs"), e("", "drugs")]),
                         ("b", [e("x.kg"), e("x.kg", "u", URL, "/p"), e("x.kg", "u", URL, "/p")])],
                        tmp_path / "i.kbi", progress=seen.append)
    assert seen == [7]
    assert (stats.domains, stats.entries, stats.duplicates, stats.skipped) == (2, 4, 2, 1)
    assert stats.per_source == {"a": 2, "b": 2}
    assert stats.per_category == {"adult": 2, "drugs": 1, "u": 1}
    assert stats.per_kind == {"domain": 3, "ip": 0, "url": 1, "exception": 0}
    assert stats.file_size == os.path.getsize(tmp_path / "i.kbi")
    with open_index(tmp_path / "i.kbi") as index:
        assert index.stats == stats
        assert len(index) == 2


def test_a_closed_index_refuses_lookups(index: DomainIndex) -> None:
    index.close()
    assert index.closed
    with pytest.raises(BlocklistError, match="closed"):
        index.lookup("example.kg")


# --- damaged files ----------------------------------------------------------------------------

@pytest.fixture
def built(tmp_path: Path) -> Path:
    path = tmp_path / "index.kbi"
    build_index([("ut1", [e(f"site{i}.example.kg") for i in range(2000)])], path)
    return path


def refused(path: Path, *, verify: bool = True) -> BlocklistError:
    with pytest.raises(BlocklistError) as info:
        open_index(path, verify=verify)
    assert "kalkan blocklists update" in str(info.value)
    assert str(path) in str(info.value)
    return info.value


def test_a_truncated_file_is_refused(built: Path) -> None:
    data = built.read_bytes()
    for size in (len(data) - 1, len(data) // 2, HEADER_SIZE + 3, 10):
        built.write_bytes(data[:size])
        assert "truncated" in refused(built, verify=False).message
    built.write_bytes(b"")
    assert "empty" in refused(built).message


@pytest.mark.parametrize("where", [0.3, 0.6, 0.999])
def test_a_flipped_byte_in_the_body_is_refused(built: Path, where: float) -> None:
    data = bytearray(built.read_bytes())
    data[int(len(data) * where)] ^= 0x10
    built.write_bytes(data)
    assert "checksum" in refused(built).message


def test_a_damaged_header_or_another_file_is_refused(built: Path) -> None:
    data = bytearray(built.read_bytes())
    data[20] ^= 0x01
    built.write_bytes(data)
    assert "header" in refused(built).message
    built.write_bytes(b"0.0.0.0 example.com\n" * 10)
    assert "not a kalkan blocklist index" in refused(built).message


def test_damaged_metadata_is_refused_even_without_the_checksum(built: Path) -> None:
    data = bytearray(built.read_bytes())
    meta_offset = int.from_bytes(data[24:32], "little")
    data[meta_offset + 2:meta_offset + 10] = b"sektions"
    built.write_bytes(data)
    assert "section table" in refused(built, verify=False).message
    data[meta_offset] = ord("[")
    built.write_bytes(data)
    assert "metadata" in refused(built, verify=False).message


def test_a_missing_index_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(BlocklistError, match="kalkan blocklists update"):
        open_index(tmp_path / "nothing.kbi")
    with pytest.raises(BlocklistError, match="cannot read"):
        open_index(tmp_path)


# --- atomic builds ----------------------------------------------------------------------------

def _broken_download() -> Iterator[ListEntry]:
    for i in range(5000):
        yield e(f"new{i}.kg")
    raise OSError("connection reset halfway through the list")


def test_a_failing_build_keeps_the_previous_index_and_leaves_no_temporary_file(
        built: Path) -> None:
    before = built.read_bytes()
    with pytest.raises(OSError, match="halfway"):
        build_index([("ut1", _broken_download())], built)
    assert built.read_bytes() == before
    assert sorted(p.name for p in built.parent.iterdir()) == [built.name]
    with open_index(built) as index:
        assert index.lookup("site7.example.kg")
        assert not index.lookup("new1.kg")


def test_a_full_disk_keeps_the_previous_index(built: Path) -> None:
    """A real failing write: the child may not write files bigger than 16 KB (RLIMIT_FSIZE)."""
    before = built.read_bytes()
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from blocklists.entries import ListEntry
        from blocklists.errors import BlocklistError
        from blocklists.index import build_index
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
        entries = [ListEntry(f"n{{i}}.big{{i % 97}}.kg", "adult") for i in range(20000)]
        try:
            build_index([("ut1", entries)], {str(built)!r})
        except BlocklistError as exc:
            print(exc)
            sys.exit(3)
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 3, run.stderr
    assert "cannot write the blocklist index" in run.stdout
    assert "previous index stays in service" in run.stdout
    assert built.read_bytes() == before
    assert sorted(p.name for p in built.parent.iterdir()) == [built.name]


def test_an_open_index_keeps_answering_after_a_rebuild_replaces_its_file(built: Path) -> None:
    with open_index(built) as old:
        assert not old.changed_on_disk()
        build_index([("ut1", [e("fresh.kg")])], built)
        assert old.changed_on_disk()
        assert old.lookup("site1.example.kg") == (m("adult", "site1.example.kg"),)
        with open_index(built) as new:
            assert new.lookup("site1.example.kg") == ()
            assert new.lookup("fresh.kg") == (m("adult", "fresh.kg"),)


def test_a_second_process_gets_the_same_answers(index: DomainIndex) -> None:
    queries = [["example.kg", None], ["a.b.example.kg", None], ["www.lib.kg", "/secret/x"],
               ["185.12.1.7", None], ["bilimland.kz", None], ["nothing.example", None]]
    script = textwrap.dedent(f"""
        import json, sys
        from blocklists.index import open_index
        with open_index({str(index.path)!r}) as index:
            print(json.dumps([index.lookup(d, p) for d, p in json.loads(sys.argv[1])]))
    """)
    run = subprocess.run([sys.executable, "-c", script, json.dumps(queries)], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True)
    theirs = json.loads(run.stdout)
    ours = [[list(match) for match in index.lookup(d, p)] for d, p in queries]
    assert theirs == ours
    assert any(theirs)


# --- against a naive reference ----------------------------------------------------------------

def naive_lookup(entries: Iterable[tuple[str, ListEntry]], host: str,
                 path: str | None) -> set[CategoryMatch]:
    labels = host.split(".")
    parents = {".".join(labels[i:]) for i in range(len(labels))}
    found: set[CategoryMatch] = set()
    cancels: set[tuple[str, int]] = set()
    for source, entry in entries:
        depth = entry.domain.count(".") + 1
        if entry.domain not in parents:
            continue
        if entry.kind is D or (entry.kind is IP and entry.domain == host):
            found.add(CategoryMatch(entry.category, entry.domain, source, depth))
        elif entry.kind is URL and path is not None and path.startswith(entry.path or "/"):
            found.add(CategoryMatch(entry.category, entry.text, source, URL_DEPTH + depth))
        elif entry.kind is EXC:
            cancels.add((source, depth))
    return {f for f in found
            if not any(f.source == s and f.depth % URL_DEPTH <= d for s, d in cancels)}


LABELS = st.sampled_from(["a", "b", "ab", "ba", "kg", "com", "x-y", "1"])
NAMES = st.lists(LABELS, min_size=1, max_size=4).map(".".join)
ENTRIES = st.tuples(
    st.sampled_from(["s1", "s2"]), NAMES, st.sampled_from(["adult", "games", "drugs"]),
    st.sampled_from([D, D, D, IP, URL, EXC]), st.sampled_from(["/", "/p", "/p/q"]),
).map(lambda t: (t[0], ListEntry(t[1], t[2], t[3], t[4] if t[3] is URL else None)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=st.lists(ENTRIES, max_size=25),
       queries=st.lists(st.tuples(NAMES, st.sampled_from([None, "/", "/p/q/r", "/z"])),
                        min_size=1, max_size=10))
def test_lookup_agrees_with_a_naive_reference(
        entries: list[tuple[str, ListEntry]], queries: list[tuple[str, str | None]]) -> None:
    by_source: dict[str, list[ListEntry]] = {}
    for source, entry in entries:
        by_source.setdefault(source, []).append(entry)
    with tempfile.TemporaryDirectory() as tmp:
        build_index(by_source.items(), Path(tmp) / "i.kbi")
        with open_index(Path(tmp) / "i.kbi") as index:
            for host, path in queries:
                found = index.lookup(host, path)
                assert len(found) == len(set(found))
                assert set(found) == naive_lookup(entries, host, path)
                depths = [f.depth for f in found]
                assert depths == sorted(depths, reverse=True)
