"""The district's web admin: district staff see every school (and only read), a school's staff
see their own school and nothing else, whatever they send."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from admin_ui import create_app
from admin_ui.staff import create_account
from district.schools import add_school, open_district, schema_for, school_database_url
from policies.database import open_engine, session_factory
from policies.models import Role
from tests.admin_ui.admin_client import FAST_HASH, Staff

pytestmark = pytest.mark.postgres
PASSWORD = "correct horse 7"


@pytest.fixture
def district_app(postgres_url):
    district = open_district(postgres_url)
    add_school(district, "school-a", "School A")
    add_school(district, "school-b", "School B")
    homes = [(district, "okrug", Role.DISTRICT)]
    for school, user in (("school-a", "resp-a"), ("school-b", "resp-b")):
        homes.append((open_engine(school_database_url(postgres_url, school)), user,
                      Role.RESPONSIBLE))
    for engine, username, role in homes:
        with session_factory(engine)() as db:
            create_account(db, username=username, full_name=username, role=role,
                           password=PASSWORD, method=FAST_HASH)
            db.commit()
    app = create_app({"TESTING": True, "DISTRICT_URL": postgres_url, "SECRET_KEY": "test",
                      "PASSWORD_METHOD": FAST_HASH})
    yield app, district
    for engine, *_ in homes:
        engine.dispose()


def _school_on_screen(person: Staff) -> str:
    exported = person.page("/council/export")
    return next(line for line in exported.splitlines() if line.startswith("  id: "))[6:]


def test_a_schools_staff_see_only_their_school(district_app):
    app, _district = district_app
    person = Staff(app.test_client())
    assert person.post("/login", username="resp-a", password=PASSWORD,
                       school="school-b").status_code == 401  # not an account of school B
    assert person.post("/login", username="resp-a", password=PASSWORD,
                       school="school-a").status_code == 302
    person._token = None
    assert _school_on_screen(person) == "school-a"
    assert person.post("/district/school", school="school-b").status_code == 403
    assert _school_on_screen(person) == "school-a"


def test_district_staff_read_every_school_and_change_none(district_app):
    app, district = district_app
    person = Staff(app.test_client())
    # District staff sign in as the district office, not as a school.
    assert person.post("/login", username="okrug", password=PASSWORD,
                       school="school-a").status_code == 401
    assert person.post("/login", username="okrug", password=PASSWORD,
                       school="").status_code == 302
    person._token = None
    assert _school_on_screen(person) == "school-a"
    page = person.page("/council/")
    assert "School B" in page  # the picker lists every school
    assert person.post("/district/school", school="school-b").status_code == 302
    assert _school_on_screen(person) == "school-b"
    assert person.get("/council/import").status_code == 403  # reading only
    with district.connect() as conn:
        viewed = conn.execute(text(
            f"SELECT actor, target FROM {schema_for('school-b')}.audit_log "
            "WHERE action = 'school_viewed'")).all()
    assert [tuple(row) for row in viewed] == [("okrug", "school-b")]
    assert person.post("/district/school", school="nowhere").status_code == 302
    assert _school_on_screen(person) == "school-b"
