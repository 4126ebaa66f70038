"""The JSON API: keys, the same rules as the pages, and what a district or an e-diary calls."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from admin_ui.models import ApiToken, AuditAction, AuditEntry
from admin_ui.staff import create_api_token
from policies.models import StaffUser
from tests.admin_ui.test_lessons import add_request, open_for, sessions_of

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff


def key_for(school, username: str, name: str = "e-diary") -> str:
    with school() as db:
        user = db.scalar(select(StaffUser).where(StaffUser.username == username))
        key = create_api_token(db, user, name)[1]
        db.commit()
    return key


class Api:
    def __init__(self, app: Flask, key: str | None) -> None:
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def get(self, url: str, **params: str):  # type: ignore[no-untyped-def]
        return self.client.get(f"/api/v1{url}", query_string=params, headers=self.headers)

    def post(self, url: str, **body: object):  # type: ignore[no-untyped-def]
        return self.client.post(f"/api/v1{url}", json=body, headers=self.headers)


@pytest.fixture
def api(app, school):  # type: ignore[no-untyped-def]
    return lambda username: Api(app, key_for(school, username) if username else None)


def test_a_key_is_needed_and_only_a_valid_one_works(app, api, school, staff):
    assert api(None).get("/sessions").status_code == 401
    assert api(None).get("/sessions").json["error"].startswith("a valid API token")
    assert Api(app, "kalkan_not-a-key").get("/sessions").status_code == 401
    signed_in = staff("council")  # a browser's cookie is not a key
    assert signed_in.client.get("/api/v1/sessions").status_code == 401
    key = key_for(school, "aigul")
    assert Api(app, key).get("/sessions").status_code == 200
    with school() as db:
        token = db.scalar(select(ApiToken))
        assert token.last_used_at is not None and key not in token.token_hash
        token.revoked_at = token.last_used_at
        db.commit()
    assert Api(app, key).get("/sessions").status_code == 401


def test_the_openapi_document_describes_every_route(app):
    doc = app.test_client().get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops
                  if method != "parameters"}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.removeprefix("/api/v1").replace("<int:", "{").replace(">", "}")
            routed |= {(path, m.lower()) for m in rule.methods & {"GET", "POST"}}
    assert documented == routed


def test_check_answers_like_the_page(api):
    body = api("director").get("/check", host="pornhub.com", client="10.10.1.101").json
    assert body["action"] == "block" and body["reason"] == "mandatory_category"
    assert body["category"] == "adult"
    body = api("director").get("/check", host="youtube.com", group="senior").json
    assert body["group"] == "senior" and body["explanation"]
    assert api("director").get("/check", host="bad..host", client="10.10.1.1").status_code == 400


def test_the_policy_and_its_revisions(api):
    assert "kalkan_policy: 1" in api("director").get("/policy").get_data(as_text=True)
    [rev] = api("director").get("/revisions").json
    assert (rev["protocol"], rev["decision_date"]) == ("1", "2026-08-28")
    assert api("aigul").get("/policy").status_code == 403


def test_an_e_diary_opens_extends_and_closes_a_lesson(api, school):
    ediary = api("aigul")
    response = ediary.post("/sessions", **{"class": "7B", "room": "lab1", "minutes": 40,
                                           "focus_sites": ["bilimland.kz"]})
    assert response.status_code == 201, response.json
    session = response.json
    assert session["mode"] == "focus" and session["focus_sites"] == ["bilimland.kz"]
    assert ediary.post("/sessions", **{"class": "10A", "room": "lab2"}).status_code == 422
    assert [s["id"] for s in ediary.get("/sessions").json] == [session["id"]]
    assert api("bakyt").get("/sessions").json == []
    assert api("bakyt").post(f"/sessions/{session['id']}/close").status_code == 404
    extended = ediary.post(f"/sessions/{session['id']}/extend", minutes=10).json
    assert extended["ends_at"] > session["ends_at"]
    assert ediary.post(f"/sessions/{session['id']}/close").status_code == 200
    assert sessions_of(school)[0].closed_at is not None
    with school() as db:
        entry = db.scalar(select(AuditEntry).where(
            AuditEntry.action == AuditAction.SESSION_OPENED.value))
        assert entry.actor == "aigul" and entry.detail["api_token"] == "e-diary"


def test_requests_are_answered_through_the_api(api, school):
    sid = open_for(school)
    rid = add_request(school, sid, "wikipedia.org", message="essay")
    porn = add_request(school, sid, "pornhub.com")
    teacher = api("aigul")
    pending = teacher.get("/requests").json
    assert [p["host"] for p in pending] == ["wikipedia.org", "pornhub.com"]
    assert pending[0]["requests"][0]["message"] == "essay"
    assert api("bakyt").post(f"/requests/{rid}/approve").status_code == 404
    assert teacher.post(f"/requests/{porn}/approve").status_code == 409
    assert teacher.post(f"/requests/{rid}/approve").json == {"answered": [rid],
                                                              "host": "wikipedia.org"}
    assert sessions_of(school)[0].allowed_sites == ["wikipedia.org"]
    assert teacher.post(f"/requests/{porn}/refuse", answer="no").status_code == 200
    assert teacher.get("/requests").json == []


def test_the_responsible_person_makes_and_revokes_keys_on_the_account_page(app, staff, school):
    admin = staff("admin")
    with school() as db:
        aigul = db.scalar(select(StaffUser).where(StaffUser.username == "aigul"))
    html = admin.post(f"/accounts/{aigul.id}/tokens?lang=en", name="e-diary").get_data(
        as_text=True)
    key = html.split("<code>kalkan_")[1].split("</code>")[0]
    assert "it will not be shown again" in html
    assert Api(app, f"kalkan_{key}").get("/sessions").status_code == 200
    with school() as db:
        token = db.scalar(select(ApiToken))
    admin.post(f"/accounts/{aigul.id}/tokens/{token.id}/revoke")
    assert Api(app, f"kalkan_{key}").get("/sessions").status_code == 401
    assert f"kalkan_{key}" not in admin.page(f"/accounts/{aigul.id}")
