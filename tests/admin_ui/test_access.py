"""Role checks on every route: the URL map is walked, and each endpoint is asked by everyone.

The table below is the access policy of the admin. A new route fails the first test until it
is added here, so no page is ever published without someone deciding who may open it.
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from admin_ui.access import EDITORS, PUBLIC, READERS, SUPERVISORS, rule_of
from admin_ui.staff import create_api_token
from policies.models import Role, StaffUser

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff

EVERYONE = frozenset(Role)
EXPECTED: dict[str, str | frozenset[Role]] = {
    "static": PUBLIC, "auth.setup": PUBLIC, "auth.login": PUBLIC, "languages.choose": PUBLIC,
    "status.healthz": PUBLIC, "operations.metrics": PUBLIC, "operations.healthz_service": PUBLIC,
    "auth.logout": EVERYONE, "status.index": EVERYONE, "status.check": EVERYONE,
    "accounts.me": EVERYONE,
    "notifications.mine": EVERYONE, "notifications.save_mine": EVERYONE,
    "notifications.test_mine": EVERYONE,
    **{e: frozenset({Role.RESPONSIBLE}) for e in (
        "notifications.user", "notifications.save_user", "notifications.test_user",
        "classes.save", "students.save", "timetable.add", "timetable.remove",
        "timetable.import_", "blocklist_sources.add", "blocklist_sources.change",
        "blocklist_sources.update_now")},
    **{e: frozenset({Role.RESPONSIBLE, Role.DIRECTOR}) for e in (
        "classes.index", "students.index")},
    **{e: frozenset(READERS) for e in (
        "rooms.index", "review_queue.index", "timetable.index", "blocklist_sources.index",
        "blocklist_sources.progress")},
    **{e: frozenset(EDITORS) for e in ("rooms.save", "review_queue.resolve")},
    **{e: frozenset(READERS) for e in (
        "status.policy", "council.matrix", "council.group", "council.sites", "council.revisions",
        "council.revision", "council.export", "devices.index", "devices.device")},
    **{e: frozenset(EDITORS) for e in (
        "council.save_matrix", "council.save_group", "council.save_sites", "council.rollback_to",
        "council.import_form", "council.save_import", "devices.pin", "devices.unpin")},
    **{e: frozenset(SUPERVISORS) for e in (
        "lessons.index", "lessons.requests", "lessons.open", "lessons.extend", "lessons.close",
        "lessons.approve_request", "lessons.refuse_request")},
    **{e: frozenset({Role.RESPONSIBLE}) for e in (
        "accounts.index", "accounts.create", "accounts.edit", "accounts.save",
        "accounts.create_token", "accounts.revoke_token")},
    "audit.index": frozenset({Role.RESPONSIBLE, Role.DIRECTOR}),
    "district.choose": frozenset({Role.DISTRICT}),  # district mode: look at another school
    "dashboard.index": frozenset(READERS), "access_log.index": frozenset(READERS),
    "access_log.export": frozenset(READERS), "alerts.acknowledge": frozenset(SUPERVISORS),
    # The JSON API: the same rules, with an API token instead of a cookie.
    "api.openapi": PUBLIC, "api.check": EVERYONE, "api.sessions": EVERYONE,
    "api.policy": frozenset(READERS), "api.revisions": frozenset(READERS),
    **{e: frozenset(SUPERVISORS) for e in (
        "api.open", "api.extend", "api.close", "api.requests", "api.approve_request",
        "api.refuse_request")},
}
# One demo account per role; None is a visitor who has not signed in.
PEOPLE = {None: None, "aigul": Role.TEACHER, "council": Role.COUNCIL,
          "director": Role.DIRECTOR, "admin": Role.RESPONSIBLE}
ARGUMENTS = {"group_id": "middle", "number": "1", "session_id": "999", "request_id": "999",
             "user_id": "999", "token_id": "999", "filename": "kalkan.css", "class_id": "7B",
             "lesson_id": "999", "name": "no-such-source",
             "mac": "52:54:00:10:01:01", "service": "dns",
             "alert_id": "999"}


def test_every_route_has_a_decided_access_rule(app: Flask):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints == set(EXPECTED), "add the new endpoint to EXPECTED with its roles"
    for endpoint, expected in EXPECTED.items():
        assert rule_of(app, endpoint) == expected, endpoint


def test_a_view_without_a_rule_is_refused_to_everyone(app: Flask, staff):
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    assert staff("admin").get("/forgotten").status_code == 403
    assert staff().get("/forgotten").status_code == 403


@pytest.mark.parametrize("username", list(PEOPLE))
def test_each_route_answers_each_role_as_the_table_says(app: Flask, staff, school, username):
    person = staff(username)
    role = PEOPLE[username]
    key = None
    if username is not None:
        with school() as db:
            user = db.scalar(select(StaffUser).where(StaffUser.username == username))
            key = create_api_token(db, user, "test")[1]
            db.commit()
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.endpoint == "auth.logout")
    for rule in rules:  # signing out last: it ends the sign-in the others need
        url = rule.build({k: v for k, v in ARGUMENTS.items() if k in rule.arguments})[1]
        api = rule.endpoint.startswith("api.")
        for method in sorted(rule.methods & {"GET", "POST"}):
            if api:  # the API takes a key, never the cookie
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                response = person.client.open(url, method=method, headers=headers, json={})
                assert person.client.open(url, method=method).status_code in (
                    401, 200), f"{url} accepted a cookie"
            else:
                response = person.get(url) if method == "GET" else person.post(url)
            expected = EXPECTED[rule.endpoint]
            allowed = expected == PUBLIC or (role is not None and role in expected)
            where = f"{method} {url} as {username}: {response.status_code}"
            if api and not allowed:
                assert response.status_code == (401 if role is None else 403), where
            elif allowed:
                assert response.status_code != 403, where
                assert "/login" not in (response.location or "") or rule.endpoint in (
                    "auth.logout", "auth.setup"), where
            elif role is None:
                assert response.status_code == 302, where
                assert response.location.startswith("/login?next="), where
            else:
                assert response.status_code == 403, where
