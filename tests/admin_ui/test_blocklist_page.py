"""Blocklist sources on the admin: add, turn off, remove, and "update now" running in the
background while the page's JSON endpoint reports its progress; failures say what to do."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from admin_ui.models import AuditEntry
from blocklists.models import BlocklistSource
from tests.admin_ui.admin_client import make_app

pytest_plugins = ["tests.admin_ui.admin_client",  # fixtures: school, staff
                  "tests.admin_ui.people_client"]  # english, admin

DOMAINS = 20000


@pytest.fixture
def app(school, sqlite_url: str, tmp_path: Path) -> Flask:  # this module's app knows data_dir
    return make_app(sqlite_url, DATA_DIR=str(tmp_path / "data"), BLOCKLIST_TIMEOUT=10.0)


@pytest.fixture
def slow_list() -> Iterator[str]:
    """A plain list served on loopback in small pieces over about a second."""
    body = "".join(f"ads{i}.example\n" for i in range(DOMAINS)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            step = len(body) // 10 + 1
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(0.1)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/ads.txt"
    server.shutdown()
    server.server_close()


def wait_finished(admin, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = admin.get("/blocklists/progress").get_json()
        if not job["running"]:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_update_now_runs_in_the_background_and_reports_progress(admin, app, school, slow_list,
                                                                tmp_path):
    response = admin.post("/blocklists/", name="ads", location=slow_list, format="plain",
                          category="ads")
    assert response.status_code == 302, response.get_data(as_text=True)
    started = time.monotonic()
    assert admin.post("/blocklists/update").status_code == 302
    assert time.monotonic() - started < 0.5  # the page does not wait for the download
    seen = admin.get("/blocklists/progress").get_json()
    assert seen["running"] and seen["phase"]
    assert "data-running" in admin.page("/blocklists/")  # the page polls while it runs
    assert admin.post("/blocklists/update").status_code == 302  # a second one is refused
    assert "already running" in admin.page("/blocklists/")
    job = wait_finished(admin)
    assert job["ok"] is True and job["domains"] >= DOMAINS and job["failed"] == []
    assert (tmp_path / "data" / "blocklists" / "index.kbi").exists()
    with school() as db:
        assert db.get(BlocklistSource, "ads").entries == DOMAINS
        actions = db.scalars(select(AuditEntry.action).where(
            AuditEntry.action.like("blocklist%"))).all()
    assert actions == ["blocklist_source_added", "blocklist_update_started"]
    html = admin.page("/blocklists/")
    assert "The last update finished" in html and "20,000" in html


def test_a_broken_source_keeps_its_last_copy_and_says_what_to_do(admin, app, school,
                                                                 tmp_path):
    good = tmp_path / "good.txt"
    good.write_text("games.example\n")
    gone = tmp_path / "gone.txt"
    gone.write_text("chat.example\n")
    for name, path, category in (("good", good, "games"), ("gone", gone, "chat")):
        assert admin.post("/blocklists/", name=name, location=str(path), format="plain",
                          category=category).status_code == 302
    gone.unlink()
    admin.post("/blocklists/update")
    job = wait_finished(admin)
    assert job["ok"] is False and [f["name"] for f in job["failed"]] == ["gone"]
    html = admin.page("/blocklists/")
    assert "no such file" in html and "stays in service" in html


def test_bad_sources_are_refused_and_sources_can_be_turned_off_and_removed(admin, school,
                                                                           tmp_path):
    response = admin.post("/blocklists/", name="Bad Name", location="https://x.example/l",
                          format="plain", category="ads")
    assert response.status_code == 400 and "not a usable source name" in response.get_data(
        as_text=True)
    response = admin.post("/blocklists/", name="x", location="https://x.example/l",
                          format="hosts")
    assert response.status_code == 400 and "belongs to one category" in response.get_data(
        as_text=True)
    listed = tmp_path / "l.txt"
    listed.write_text("<b>x</b>.example\n")
    assert admin.post("/blocklists/", name="mine", location=str(listed), format="plain",
                      category="ads").status_code == 302
    assert admin.post("/blocklists/mine", action="disable").status_code == 302
    with school() as db:
        assert db.get(BlocklistSource, "mine").enabled is False
    assert admin.post("/blocklists/mine", action="remove").status_code == 302
    with school() as db:
        assert db.get(BlocklistSource, "mine") is None


def test_without_a_data_directory_update_now_says_how_to_run_it(english, staff, school,
                                                                sqlite_url):
    person = staff()
    person.client = make_app(sqlite_url).test_client()
    person.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    person.sign_in("admin")
    response = person.post("/blocklists/update")
    assert response.status_code == 400
    assert "data directory" in response.get_data(as_text=True)


def test_another_admin_process_sees_the_update_and_refuses_a_second(admin, app, school,
                                                                    slow_list, sqlite_url,
                                                                    tmp_path):
    """`kalkan admin` may serve the pages from several processes: whichever one a click
    reaches, there is one update at a time and every one shows its progress."""
    from tests.admin_ui.admin_client import Staff

    other_app = make_app(sqlite_url, DATA_DIR=str(tmp_path / "data"), BLOCKLIST_TIMEOUT=10.0)
    other = Staff(other_app.test_client())
    assert other.sign_in("admin").status_code == 302
    other.post("/language", lang="en", next="/blocklists/")
    admin.post("/blocklists/", name="ads", location=slow_list, format="plain", category="ads")
    assert admin.post("/blocklists/update").status_code == 302
    seen = other.get("/blocklists/progress").get_json()  # the other process
    assert seen["running"] and seen["phase"]
    assert other.post("/blocklists/update").status_code == 302
    assert "already running" in other.page("/blocklists/")
    job = wait_finished(other)
    assert job["ok"] is True and job["domains"] >= DOMAINS
