"""`kalkan blocklists update`: new lists are swapped in whole; anything that fails keeps the old."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from blocklists.errors import BlocklistError
from blocklists.index import open_index
from blocklists.live import LiveIndex
from blocklists.models import BlocklistSource
from blocklists.sources import add_source, ensure_bundled_sources, set_enabled
from blocklists.update import index_path, update

DATA = Path(__file__).resolve().parent.parent / "data"


class ListServer:
    """A local HTTP server on 127.0.0.1 whose answer for /list each test sets."""

    def __init__(self) -> None:
        self.body = b""
        self.announce: int | None = None  # Content-Length to claim (a truncated download)
        self.status = 200
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(server.status)
                self.send_header("Content-Length", str(server.announce or len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/list"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def list_server() -> Iterator[ListServer]:
    server = ListServer()
    yield server
    server.close()


def hosts_body(*names: str) -> bytes:
    return "".join(f"0.0.0.0 {n}\n" for n in names).encode()


def lookup(data_dir: Path, host: str) -> list[tuple[str, str]]:
    with open_index(index_path(data_dir)) as index:
        return [(m.category, m.source) for m in index.lookup(host)]


def test_the_bundled_lists_build_an_index_with_no_network(demo: sessionmaker[Session], tmp_path):
    with demo() as db:
        ensure_bundled_sources(db)
        result = update(db, tmp_path)
    assert not result.failed
    assert result.stats.domains > 400_000
    assert ("gambling", "ut1") in lookup(tmp_path, "www.1xbet.com")
    assert ("education", "education-allowlist") in lookup(tmp_path, "www.bilimland.kz")
    assert ("proxy_vpn", "ut1") in lookup(tmp_path, lookup_any_redirector(tmp_path))


def lookup_any_redirector(data_dir: Path) -> str:
    with open_index(index_path(data_dir)) as index:
        assert index.stats.per_category["proxy_vpn"] > 100_000
    return "hidemyass.com"


def test_a_url_source_is_downloaded_checked_and_used(demo, tmp_path, list_server):
    list_server.body = hosts_body("ads.example.kg", "tracker.example.kz")
    with demo() as db:
        add_source(db, "ads", list_server.url, "hosts", category="ads")
        result = update(db, tmp_path)
        source = db.get(BlocklistSource, "ads")
        assert source.entries == 2 and source.last_error is None and source.last_sha256
    assert [o.ok for o in result.outcomes] == [True]
    assert lookup(tmp_path, "cdn.ads.example.kg") == [("ads", "ads")]


@pytest.mark.parametrize("breakage", ["truncated", "http_error", "empty", "corrupt_archive"])
def test_a_broken_update_keeps_the_previous_copy_and_says_what_to_do(
        demo, tmp_path, list_server, breakage):
    list_server.body = hosts_body("ads.example.kg", "tracker.example.kz")
    with demo() as db:
        add_source(db, "ads", list_server.url, "hosts", category="ads")
        update(db, tmp_path)
        if breakage == "truncated":
            list_server.body = hosts_body("new.example.kg")
            list_server.announce = 10_000  # the connection ends before the announced length
        elif breakage == "http_error":
            list_server.status = 503
        elif breakage == "empty":
            list_server.body = b"<html>maintenance</html>\n"
        else:
            archive = tmp_path / "broken.tar.gz"
            archive.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(2000))
            set_enabled(db, "ads", False)
            add_source(db, "ut1-mirror", str(archive), "ut1")
        result = update(db, tmp_path)
        failed = result.failed
        assert len(failed) == 1
        message = failed[0].error
        assert "stays in service" in message
        assert ".download-" not in message  # the list is named, not a temporary file
        name = failed[0].name
        assert db.get(BlocklistSource, name).last_error == message
    if breakage != "corrupt_archive":
        assert failed[0].used_previous
        assert lookup(tmp_path, "ads.example.kg") == [("ads", "ads")]  # the last good copy
        assert lookup(tmp_path, "new.example.kg") == []


def test_a_list_that_shrank_by_more_than_half_needs_force(demo, tmp_path, list_server):
    list_server.body = hosts_body(*(f"host{i}.example.kg" for i in range(10)))
    with demo() as db:
        add_source(db, "ads", list_server.url, "hosts", category="ads")
        update(db, tmp_path)
        list_server.body = hosts_body("host1.example.kg")
        refused = update(db, tmp_path)
        assert "update --force" in refused.failed[0].error
        assert lookup(tmp_path, "host7.example.kg") == [("ads", "ads")]
        assert not update(db, tmp_path, force=True).failed
    assert lookup(tmp_path, "host7.example.kg") == []


def test_bad_sources_are_refused_when_added(demo, tmp_path):
    with demo() as db:
        with pytest.raises(BlocklistError, match="unknown category"):
            add_source(db, "x", str(DATA / "hosts"), "hosts", category="nonsense")
        with pytest.raises(BlocklistError, match="belongs to one category"):
            add_source(db, "x", str(DATA / "hosts"), "hosts")
        with pytest.raises(BlocklistError, match="no such file"):
            add_source(db, "x", str(tmp_path / "missing.txt"), "plain", category="ads")
        with pytest.raises(BlocklistError, match="unknown list format"):
            add_source(db, "x", str(DATA / "hosts"), "squid", category="ads")


def _tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


def test_a_full_disk_keeps_the_old_index_in_service(demo, tmp_path):
    disk = tmp_path / "disk"
    if not _tmpfs(disk, "600k"):
        pytest.skip("mounting a tmpfs needs root and mount(8); the full-disk case is untested")
    try:
        with demo() as db:
            add_source(db, "doh", str(DATA / "doh-domains.txt"), "plain", category="doh")
            update(db, disk)
            before = lookup(disk, "8888.google")
            assert before == [("doh", "doh")]
            ensure_bundled_sources(db)  # 700,000 UT1 entries will not fit in 600 KB
            with pytest.raises(BlocklistError) as caught:
                update(db, disk)
            message = str(caught.value)
            assert "No space left" in message and "free some disk space" in message
        assert lookup(disk, "8888.google") == before
        assert not [p for p in (disk / "blocklists").iterdir() if p.name.startswith(".")]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


READER = textwrap.dedent("""
    import sys, time
    from blocklists.live import LiveIndex
    live = LiveIndex(sys.argv[1])
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        live.maybe_reload()
        answer = [m.category for m in live.lookup("fresh.example.kg")]
        old = [m.category for m in live.lookup("ads.example.kg")]
        print(",".join(answer) or "-", ",".join(old) or "-", flush=True)
        if answer:
            break
        time.sleep(0.05)
""")


def test_a_running_reader_keeps_answering_and_then_sees_the_new_index(
        demo, tmp_path, list_server):
    list_server.body = hosts_body("ads.example.kg")
    with demo() as db:
        add_source(db, "ads", list_server.url, "hosts", category="ads")
        update(db, tmp_path)
        reader = subprocess.Popen([sys.executable, "-c", READER, str(index_path(tmp_path))],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout.readline().strip() == "ready"
            first = reader.stdout.readline().split()
            assert first == ["-", "ads"]
            list_server.body = hosts_body("ads.example.kg", "fresh.example.kg")
            update(db, tmp_path)
            lines = [line.split() for line in reader.stdout]
        finally:
            reader.kill()
            reader.wait()
    assert lines and lines[-1] == ["ads", "ads"]  # new entry seen, old one still answered
    assert all(old == "ads" for _, old in lines)  # never a gap while the file was swapped


def test_the_engine_names_the_category_and_the_source_list(demo, tmp_path, list_server):
    from conftest import LESSON
    from policies.engine import Engine

    list_server.body = hosts_body("casino.example.kg")
    with demo() as db:
        add_source(db, "casinos", list_server.url, "hosts", category="gambling")
        update(db, tmp_path)
    engine = Engine.from_database(demo, categories=LiveIndex(index_path(tmp_path)))
    decision = engine.decide("10.10.9.20", "www.casino.example.kg", None, LESSON)
    assert decision.blocked and decision.category == "gambling"
    assert "list casinos" in decision.explain()
