"""The admin under attack: forged forms on every POST route, script in stored data, a
planted cookie, guessed passwords, and the role checks (test_access.py walks every route).

The stored strings come in the way an attacker could bring them: a host name from a DNS query
or an SNI, a device name, a student's reason on the block page, a group name in an imported
policy. None may run as script on a page of the admin.
"""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import func, select

from admin_ui.access import PUBLIC, rule_of
from admin_ui.models import AuditEntry
from policies.models import Group, Role
from tests.admin_ui.dashboard_data import add_alert, allowed, blocked, write_events
from tests.admin_ui.test_lessons import add_request, open_for

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff

SCRIPT = "<script>alert(1)</script>"
TAG = re.compile(r"<script>alert|<img src=x onerror", re.I)
ARGUMENTS = {"group_id": "middle", "number": "1", "session_id": "1", "request_id": "1",
             "user_id": "2", "token_id": "1", "alert_id": "1", "mac": "52:54:00:10:01:01",
             "class_id": "7B", "lesson_id": "1", "name": "ut1", "service": "dns"}
# One demo account per role, the one a forged form would be made to use.
BY_ROLE = {Role.RESPONSIBLE: "admin", Role.COUNCIL: "council", Role.TEACHER: "aigul",
           Role.DIRECTOR: "director"}


def audit_count(school) -> int:
    with school() as db:
        return db.scalar(select(func.count()).select_from(AuditEntry))


def post_routes(app: Flask) -> list[tuple[str, str]]:
    """(endpoint, url) of every route that takes a POST from a browser (not the API)."""
    found = []
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and not rule.endpoint.startswith("api."):
            url = rule.build({k: v for k, v in ARGUMENTS.items() if k in rule.arguments})[1]
            found.append((rule.endpoint, url))
    return sorted(found)


def test_every_post_route_refuses_a_form_without_its_csrf_token(app, school, staff):
    routes = post_routes(app)
    assert len(routes) >= 20, routes  # the walk found the admin's forms
    with school() as db:
        session_id = open_for(school)
        request_id = add_request(school, session_id, "roblox.com")
        alert_id = add_alert(db, class_id="7B", host="pornhub.com").id
    assert (session_id, request_id, alert_id) == (1, 1, 1)  # what ARGUMENTS names
    people = {role: staff(name) for role, name in BY_ROLE.items()}  # signed in first
    someone_elses = staff().token()
    before = audit_count(school)
    form = {"username": "admin", "password": "x", "lang": "ru", "minutes": "10",
            "class_id": "7B", "room": "lab1", "allow": "", "block": "evil.example",
            "protocol": "9", "decision_date": "2026-09-01", "next": "/"}
    for endpoint, url in routes:
        rule = rule_of(app, endpoint)
        roles = [Role.RESPONSIBLE] if rule == PUBLIC else sorted(rule)
        # District staff exist only in district mode (tests/district); a route only they may
        # use is tried here as someone else, and must refuse the form all the same.
        roles = [role for role in roles if role in people] or [Role.RESPONSIBLE]
        for role in roles:
            for token in (None, "forged", someone_elses):
                data = form if token is None else {**form, "csrf_token": token}
                response = people[role].client.post(url, data=data)
                assert response.status_code == 400, f"{url} as {role} with token {token!r}"
    assert audit_count(school) == before, "a forged form changed something"


def test_script_in_stored_data_is_shown_as_text(app, school, sqlite_url, staff, tmp_path):
    host = f"{SCRIPT}.example"
    device = '"><img src=x onerror=alert(1)>'
    write_events(school, sqlite_url, [
        blocked(host, device=device), blocked(host, SCRIPT, device=device),
        allowed(f"{SCRIPT}.lib.kg")], tmp_path, allowed_events="full")
    with school() as db:
        add_alert(db, class_id="7B", host=host, device=device)
        db.get(Group, "middle").name = f"Middle {SCRIPT}"
        db.commit()
    session_id = open_for(school)
    add_request(school, session_id, "wikipedia.org", message=f"for my essay {SCRIPT}",
                device=device)
    pages = {"admin": ["/dashboard/", "/log/", "/log/?site=%3Cscript%3E", "/council/",
                       "/lessons/"],
             "aigul": ["/lessons/", "/lessons/requests"]}
    for username, urls in pages.items():
        person = staff(username)
        for url in urls:
            response = person.client.get(url)
            assert response.status_code == 200, url
            html = response.get_data(as_text=True)
            assert not TAG.search(html), f"{url} as {username} runs stored script"
    dashboard = staff("admin").page("/dashboard/")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.example" in dashboard
    teacher = staff("aigul").page("/lessons/")
    assert "for my essay &lt;script&gt;" in teacher
    assert "&lt;img src=x onerror=alert(1)&gt;" in teacher  # the alert's device, as text


def test_a_cookie_planted_before_sign_in_is_worth_nothing_after(staff):
    """Session fixation: what a visitor's cookie held (its CSRF token) ends at sign-in."""
    person = staff()
    planted_token = person.token()
    planted = person.client.get_cookie("kalkan_session").value
    assert person.sign_in("council").status_code == 302
    assert person.client.get_cookie("kalkan_session").value != planted
    response = person.client.post("/logout", data={"csrf_token": planted_token})
    assert response.status_code == 400  # the planted token was not carried over
    cookie = person.client.get_cookie("kalkan_session")
    assert cookie.http_only and cookie.same_site == "Lax"


def test_guessing_passwords_is_throttled_for_every_account(staff):
    attacker = staff()
    codes = [attacker.sign_in("admin", f"guess-{i}").status_code for i in range(8)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    assert attacker.sign_in("admin").status_code == 429  # even the right password now


def test_pages_forbid_inline_script_and_framing(staff):
    response = staff("admin").get("/dashboard/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and response.headers["X-Frame-Options"] == "DENY"
    assert "<script>" not in response.get_data(as_text=True)  # no inline script at all
