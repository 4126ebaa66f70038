"""Accounts and sign-in: first-run setup, passwords, throttling, CSRF, cookies, the audit log."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie

from flask import Flask
from sqlalchemy import select

from admin_ui.models import AuditAction, AuditEntry
from admin_ui.staff import DEMO_PASSWORD, give_demo_passwords, needs_setup
from policies.database import open_engine, session_factory
from policies.models import Role, StaffUser
from tests.admin_ui.admin_client import FAST_HASH, Staff, make_app

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff


def audit(sessions, action: AuditAction) -> list[AuditEntry]:
    with sessions() as db:
        return list(db.scalars(select(AuditEntry).where(AuditEntry.action == action.value)
                               .order_by(AuditEntry.id)))


def test_first_run_setup_creates_the_responsible_person_and_then_closes(sessions, sqlite_url):
    app = make_app(sqlite_url)
    visitor = Staff(app.test_client())
    response = visitor.get("/council/")
    assert response.status_code == 302 and response.location == "/setup"
    assert "Welcome to kalkan" in visitor.page("/setup", lang="en")
    response = visitor.post("/setup", username="Aliya", full_name="Aliya Bekova",
                            password="short", password2="short")
    assert "at least 8 characters" in response.get_data(as_text=True)
    response = visitor.post("/setup", username="Aliya", full_name="Aliya Bekova",
                            password="a long passphrase", password2="a long passphrase",
                            language="ru")
    assert response.status_code == 302 and response.location == "/accounts/"
    assert "aliya" in visitor.page("/accounts/")  # signed in as the responsible person
    with session_factory(open_engine(sqlite_url))() as db:
        user = db.scalar(select(StaffUser).where(StaffUser.username == "aliya"))
        assert user.role == Role.RESPONSIBLE and user.language == "ru"
        assert user.password_hash.startswith("pbkdf2:") and "a long" not in user.password_hash
        assert not needs_setup(db)
    stranger = Staff(app.test_client())
    assert stranger.get("/setup").location == "/login"
    stranger.post("/setup", username="evil", full_name="Evil", password="p" * 12,
                  password2="p" * 12)
    with session_factory(open_engine(sqlite_url))() as db:
        assert db.scalar(select(StaffUser).where(StaffUser.username == "evil")) is None
    assert [e.actor for e in audit(session_factory(open_engine(sqlite_url)),
                                   AuditAction.SETUP)] == ["aliya"]


def test_demo_staff_have_no_password_until_the_demo_gives_them_one(demo):
    with demo() as db:
        assert needs_setup(db)
        assert give_demo_passwords(db, method=FAST_HASH) == [
            "admin", "council", "director", "aigul", "bakyt", "dana"]
        assert give_demo_passwords(db, method=FAST_HASH) == []  # never replaces a password


def test_sign_in_and_out(app: Flask, school, staff):
    person = staff()
    response = person.get("/council/")
    assert response.status_code == 302 and response.location == "/login?next=%2Fcouncil%2F"
    response = person.sign_in("Council", next="/council/")
    assert response.status_code == 302 and response.location == "/council/"
    assert person.get("/council/").status_code == 200
    assert person.post("/logout").location == "/login"
    assert person.get("/council/").status_code == 302
    actions = [e.action for e in audit(school, AuditAction.SIGN_IN)] + [
        e.action for e in audit(school, AuditAction.SIGN_OUT)]
    assert actions == ["sign_in", "sign_out"]


def test_a_teacher_lands_on_their_lessons_and_never_on_an_outside_site(staff):
    assert staff().sign_in("aigul").location == "/lessons/"
    assert staff().sign_in("aigul", next="https://evil.example/").location == "/lessons/"
    assert staff().sign_in("aigul", next="//evil.example/").location == "/lessons/"


def test_a_wrong_password_is_refused_and_logged(staff, school):
    response = staff().sign_in("council", "guess-guess")
    assert response.status_code == 401
    assert "Wrong user name or password." in response.get_data(as_text=True)
    response = staff().sign_in("nobody", "guess-guess")
    assert response.status_code == 401
    assert [e.target for e in audit(school, AuditAction.SIGN_IN_FAILED)] == ["council", "nobody"]


def test_brute_force_is_throttled_even_with_the_right_password(staff, school):
    attacker = staff()
    for _ in range(5):
        assert attacker.sign_in("council", "wrong-password").status_code == 401
    response = attacker.sign_in("council", DEMO_PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)
    assert staff().sign_in("director").status_code == 302  # other accounts are not locked
    with school() as db:  # the window passes
        for entry in db.scalars(select(AuditEntry)):
            entry.created_at -= dt.timedelta(minutes=16)
        db.commit()
    assert staff().sign_in("council").status_code == 302


def test_one_machine_trying_many_names_is_throttled(staff):
    attacker = staff()
    for i in range(20):
        attacker.sign_in(f"user{i}", "wrong-password")
    assert attacker.sign_in("council").status_code == 429


def test_a_post_without_the_csrf_token_is_refused(staff, school):
    person = staff("council")
    for url, form in (("/council/sites", {"allow": "", "block": "evil.example"}),
                      ("/logout", {}), ("/lessons/open", {"class_id": "7B"})):
        response = person.client.post(url, data=form)
        assert response.status_code == 400, url
        assert "did not come from this site" in response.get_data(as_text=True) or (
            "<h1>" in response.get_data(as_text=True))
    response = person.client.post("/council/sites", data={"csrf_token": "forged", "block": "x"})
    assert response.status_code == 400
    assert person.get("/council/").status_code == 200  # still signed in


def test_sign_in_does_not_keep_a_cookie_from_before(app: Flask, staff):
    """Session fixation: a cookie planted before sign-in must not become a signed-in one."""
    visitor = staff()
    visitor.token()  # the visitor now has a cookie session
    planted = visitor.client.get_cookie("kalkan_session").value
    assert visitor.sign_in("council").status_code == 302
    signed_in = visitor.client.get_cookie("kalkan_session").value
    assert signed_in != planted
    attacker = app.test_client()
    attacker.set_cookie("kalkan_session", planted)
    assert attacker.get("/council/").status_code == 302  # the planted cookie is worth nothing


def test_the_cookie_is_httponly_samesite_and_secure_over_https(app: Flask, staff):
    person = staff()
    response = person.client.post("/login", data={"csrf_token": person.token(),
                                                   "username": "council",
                                                   "password": DEMO_PASSWORD})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = app.test_client()
    html = secure.get("/login", base_url="https://admin.school.kg").get_data(as_text=True)
    token = html.split('name="csrf_token" value="')[1].split('"')[0]
    response = secure.post("/login", base_url="https://admin.school.kg", data={
        "csrf_token": token, "username": "council", "password": DEMO_PASSWORD},
        headers={"Referer": "https://admin.school.kg/login"})
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


def test_pages_carry_protective_headers(staff):
    response = staff("council").get("/council/")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_sign_in_expires(app: Flask, staff):
    person = staff("council")
    with person.client.session_transaction() as cookie:
        cookie["signed_in_at"] -= int(app.config["SESSION_MAX_AGE"].total_seconds()) + 1
    assert person.get("/council/").status_code == 302
    cookie = SimpleCookie(staff().sign_in("council").headers["Set-Cookie"])["kalkan_session"]
    expires = parsedate_to_datetime(cookie["expires"])
    left = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=7) < left <= dt.timedelta(hours=8)  # 8 hours unused, then gone


def test_changing_a_password_signs_the_account_out_everywhere(staff):
    phone, desk = staff("aigul"), staff("aigul")
    response = desk.post("/accounts/me", password=DEMO_PASSWORD, new_password="new password 1",
                         new_password2="new password 1")
    assert response.location == "/login"
    assert phone.get("/lessons/").status_code == 302
    assert staff().sign_in("aigul").status_code == 401
    assert staff().sign_in("aigul", "new password 1").status_code == 302


def test_a_disabled_account_is_signed_out_and_cannot_sign_in(staff, school):
    teacher = staff("bakyt")
    admin = staff("admin")
    with school() as db:
        bakyt = db.scalar(select(StaffUser).where(StaffUser.username == "bakyt"))
    response = admin.post(f"/accounts/{bakyt.id}", full_name=bakyt.full_name, role="teacher")
    assert response.status_code == 302
    assert teacher.get("/lessons/").status_code == 302
    assert staff().sign_in("bakyt").status_code == 401
    entry = audit(school, AuditAction.ACCOUNT_CHANGED)[-1]
    assert entry.actor == "admin" and entry.target == "bakyt" and entry.detail["active"] is False


def test_the_responsible_person_creates_a_teacher_with_classes(staff, school):
    admin = staff("admin")
    response = admin.post("/accounts/", username="Nurlan", full_name="Nurlan Abdyraev",
                          role="teacher", password="first password", language="ky")
    assert response.status_code == 302
    user_id = int(response.location.rsplit("/", 1)[1])
    admin.post(f"/accounts/{user_id}", full_name="Nurlan Abdyraev", role="teacher",
               active="on", classes=["5A", "6A"])
    teacher = staff()
    assert teacher.sign_in("nurlan", "first password").status_code == 302
    html = teacher.page("/lessons/")
    assert 'value="5A"' in html and 'value="6A"' in html and 'value="7B"' not in html
    assert [e.target for e in audit(school, AuditAction.ACCOUNT_CREATED)] == ["nurlan"]


def test_the_audit_log_is_for_the_responsible_person_and_the_director(staff):
    staff("council")
    html = staff("director").page("/audit/", lang="en")
    assert "sign_in" in html and "council" in html
    assert staff("council").get("/audit/").status_code == 403
