"""The status pages of the admin UI, over HTTP with Flask's test client, signed in as the
council (since the admin issue every page but /healthz needs a sign-in)."""

from __future__ import annotations

import datetime as dt

import pytest
from flask.testing import FlaskClient

from admin_ui.staff import create_account
from policies.database import open_engine, session_factory
from policies.decision import CouncilDecision
from policies.demo import demo_policy_data
from policies.document import render_document
from policies.models import Role
from policies.revisions import export_policy, import_policy
from policies.sessions import open_session
from tests.admin_ui.admin_client import FAST_HASH, Staff, make_app

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff


@pytest.fixture
def client(staff) -> FlaskClient:
    return staff("council").client


def page(http: FlaskClient, url: str, **params: str) -> str:
    params.setdefault("lang", "en")  # the demo council member reads Kyrgyz
    response = http.get(url, query_string=params)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def test_the_index_shows_the_school_its_revision_groups_and_rooms(client):
    html = page(client, "/")
    assert "<h1>Demo school No 1</h1>" in html
    assert "Policy revision 1, council protocol No 1 of Aug 28, 2026." in html
    for name in ("Primary school, grades 1–4", "Middle school, grades 5–9", "Teachers", "Guests"):
        assert name in html
    assert "mon-fri 08:00–17:00; sat 08:00–13:00" in html
    assert "Computer lab 1 (room 204)" in html and "10.10.1.0/24, fd00:10:10:1::/64" in html
    assert "No session is open." in html


def test_the_index_lists_open_sessions(client, demo):
    with demo() as db:
        open_session(db, room="lab1", teacher="aigul", class_id="7B", minutes=45)
    html = page(client, "/")
    assert "Aigul Sadykova" in html and "No session is open." not in html


def test_check_shows_a_block_and_the_regulation(client):
    html = page(client, "/check", host="pornhub.com", client="10.10.1.101")
    assert '<h2 class="blocked">Blocked</h2>' in html
    assert "regulation 3.3 bars for" in html
    assert "Category: adult" in html


def test_check_without_a_question_shows_the_form(client):
    html = page(client, "/check")
    assert 'name="host"' in html and "Blocked" not in html and "Allowed" not in html


def test_check_escapes_what_it_reflects(client):
    html = page(client, "/check", host="<script>alert(1)</script>", client="10.10.1.101")
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    html = page(client, "/check", host="lib.kg", client='"><script>alert(1)</script>')
    assert "<script>" not in html
    assert "is not an IP address" in html


def test_check_says_what_is_wrong_with_the_question(client):
    html = page(client, "/check", host="bad..host", client="10.10.1.101")
    assert "empty label" in html and "Blocked" not in html


def test_check_sees_a_policy_change_without_a_restart(client, demo):
    guest = "192.168.77.5"  # no room claims it: the guests group, which has no schedule
    assert "Allowed" in page(client, "/check", host="lib.kg", client=guest)
    data = demo_policy_data()
    data["sites"]["block"].append("lib.kg")
    with demo() as db:
        import_policy(db, render_document(data), file="p.yaml", author="council",
                      decision=CouncilDecision("7", "2026-10-01"))
    html = page(client, "/check", host="lib.kg", client=guest)
    assert '<h2 class="blocked">Blocked</h2>' in html
    assert "protocol No 7 of 2026-10-01" in html


def test_the_policy_page_shows_the_document_and_the_revisions(client, demo):
    with demo() as db:
        text = export_policy(db)
    html = page(client, "/policy")
    assert "protocol No 1 of Aug 28, 2026" in html
    assert "<td>demo</td>" in html
    assert "  - id: adult\n    mandatory: true\n" in html
    assert "Zo&#39;ravonlik" in html  # the text is escaped, not interpreted
    assert text.replace("'", "&#39;").replace('"', "&#34;") in html


def test_healthz_is_json_with_the_revision(client, demo):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["revision"] == 1
    assert response.json["policy_version"] >= 1
    with demo() as db:
        open_session(db, room="lab1", teacher="aigul", minutes=45,
                     starts_at=dt.datetime(2030, 11, 27, 4, 0))
    assert client.get("/healthz").json["policy_version"] > response.json["policy_version"]


def test_healthz_needs_no_sign_in(app):
    assert app.test_client().get("/healthz").status_code == 200


def test_an_empty_database_shows_that_no_school_is_configured(sessions, sqlite_url):
    with session_factory(open_engine(sqlite_url))() as db:
        create_account(db, username="admin", full_name="Admin", role=Role.RESPONSIBLE,
                       password="long enough", method=FAST_HASH)
        db.commit()
    person = Staff(make_app(sqlite_url).test_client())
    person.sign_in("admin", "long enough")
    assert "No school configured" in page(person.client, "/")
