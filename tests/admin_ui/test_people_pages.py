"""The responsible person's pages for the school's people and places: rooms and networks (a
policy change with a council decision), classes and their teachers, students with consent."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from admin_ui.models import AuditEntry, TeacherClass
from conftest import LESSON
from policies.engine import Engine
from policies.models import RequestKind, SchoolClass, StaffUser, Student
from policies.revisions import history
from tests.admin_ui.test_languages import TRANSLATED, english_left

pytest_plugins = ["tests.admin_ui.admin_client",  # fixtures: school, app, staff
                  "tests.admin_ui.people_client"]  # english, admin

DECISION = {"protocol": "21", "decision_date": "2026-11-20"}


def test_a_new_room_is_a_revision_and_the_engine_places_its_computers(admin, school):
    before = Engine.from_database(school, default_group="guests").decide(
        "10.10.7.5", "vk.com", at=LESSON)
    assert before.room is None
    response = admin.post("/rooms/", id="lab3", name="Lab 3 <b>new</b>",
                          default_group="senior", networks="10.10.7.0/24", **DECISION)
    assert response.status_code == 302, response.get_data(as_text=True)
    with school() as db:
        latest = history(db)[-1]
    assert (latest.protocol, str(latest.decision_date)) == ("21", "2026-11-20")
    assert "10.10.7.0/24" in latest.document
    after = Engine.from_database(school, default_group="guests").decide(
        "10.10.7.5", "vk.com", at=LESSON)
    assert after.room == "lab3" and after.group == "senior"
    html = admin.page("/rooms/")
    assert "Lab 3 &lt;b&gt;new&lt;/b&gt;" in html and "<b>new" not in html
    assert "lab3" in admin.page(f"/council/history/{latest.id}").split("<pre")[0]


def test_an_overlapping_network_is_refused_with_the_room_that_has_it(admin, school):
    with school() as db:
        revisions = len(history(db))
    response = admin.post("/rooms/", id="lab3", name="Lab 3", default_group="senior",
                          networks="10.10.1.128/25", **DECISION)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "overlaps 10.10.1.0/24 of room" in html and "lab1" in html
    assert "10.10.1.128/25" in html  # the edit is kept on the page
    with school() as db:
        assert len(history(db)) == revisions


def test_a_room_change_needs_the_council_decision(admin, school):
    response = admin.post("/rooms/", id="lab1", name="Lab one", default_group="middle",
                          networks="10.10.1.0/24")
    assert response.status_code == 400
    assert "protocol number and date" in response.get_data(as_text=True)


def test_a_class_gets_its_class_teacher_and_teachers(admin, school):
    with school() as db:
        ids = {u.username: u.id for u in db.scalars(select(StaffUser))}
    response = admin.client.post("/classes/", data={
        "csrf_token": admin.token(), "id": "8C", "grade": "8", "group": "middle",
        "class_teacher": str(ids["dana"]), "teachers": [str(ids["aigul"]), str(ids["bakyt"])]})
    assert response.status_code == 302
    with school() as db:
        row = db.get(SchoolClass, "8C")
        assert (row.grade, row.group_id, row.class_teacher_id) == (8, "middle", ids["dana"])
        assert {t.teacher_id for t in db.scalars(
            select(TeacherClass).where(TeacherClass.class_id == "8C"))} == {
            ids["aigul"], ids["bakyt"]}
    # The teacher now sees 8C among her classes on the lessons page.
    assert 'value="8C"' in admin_page_as(admin, "aigul", "/lessons/")
    html = admin.page("/classes/", edit="8C")
    assert 'value="8C"' in html and "checked" in html


def admin_page_as(admin, username: str, url: str) -> str:
    from tests.admin_ui.admin_client import Staff

    person = Staff(admin.client.application.test_client())
    person.sign_in(username)
    return person.page(url)


def test_a_class_with_students_is_not_removed(admin, school):
    response = admin.post("/classes/", id="7B", remove="1")
    assert response.status_code == 400
    assert "still has" in response.get_data(as_text=True)
    with school() as db:
        assert db.get(SchoolClass, "7B") is not None


def test_a_name_needs_a_recorded_consent_and_withdrawal_erases_it(admin, school):
    response = admin.post("/classes/7B/students/", action="add", name="Asel Toktogulova")
    assert response.status_code == 400
    assert "date of the written consent" in response.get_data(as_text=True)
    with school() as db:
        assert db.scalar(select(Student).where(Student.name == "Asel Toktogulova")) is None

    response = admin.post("/classes/7B/students/", action="add",
                          name="<script>alert(1)</script>", consent_date="2026-09-03",
                          consent_reference="form 7B/9")
    assert response.status_code == 302
    with school() as db:
        student = db.scalar(select(Student).where(Student.consent_reference == "form 7B/9"))
        assert student.consent_recorded_by == "admin"
        assert str(student.consent_recorded_on) == "2026-09-03"
        sid = student.id
    html = admin.page("/classes/7B/students/")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "recorded by admin" in html

    assert admin.post("/classes/7B/students/", action="withdraw",
                      student=str(sid)).status_code == 302
    with school() as db:
        student = db.get(Student, sid)
        assert student is not None and student.name is None
        assert student.consent_recorded_on is None and student.consent_recorded_by is None
        entries = db.scalars(select(AuditEntry).where(
            AuditEntry.target == f"student {sid} of 7B")).all()
    assert [e.action for e in entries] == ["student_saved", "consent_withdrawn"]
    assert all("script" not in str(e.detail) for e in entries)  # the name is not logged


def test_the_director_reads_the_classes_but_a_teacher_does_not(english, staff):
    director = staff("director")
    html = director.page("/classes/")
    assert "7B" in html and "Add or change a class" not in html
    assert director.post("/classes/", id="9Z", grade="9", group="middle").status_code == 403
    assert staff("aigul").get("/classes/7B/students/").status_code == 403


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_pages_speak_the_language_with_no_english_left(lang, admin, school):
    from tests.admin_ui.test_review_queue import ask
    from tests.admin_ui.test_timetable import add_lesson

    add_lesson(school, mode="focus", sites=["bilimland.kz"])
    ask(school, RequestKind.REPORT, "bad.example", message="please")
    dismissed = ask(school, RequestKind.REVIEW, "melbet.com")
    admin.post(f"/queue/{dismissed}", outcome="dismiss", answer="gambling")
    admin.page("/queue/")  # shows (and so ends) the English flash message
    with school() as db:
        bakyt = db.scalar(select(StaffUser.id).where(StaffUser.username == "bakyt"))
    for url in ("/rooms/", "/classes/", "/classes/?edit=7B", "/classes/7B/students/",
                "/timetable/", "/queue/?show=all", "/blocklists/", "/notifications/",
                f"/notifications/{bakyt}"):
        path, _, query = url.partition("?")
        html = admin.page(path, lang=lang, **dict([query.split("=")] if query else []))
        assert f'<html lang="{lang}">' in html, url
        # Lists to choose from hold data (device ids such as lab1-teacher), not our words.
        words = re.sub(r"<select\b.*?</select>", " ", html, flags=re.S)
        assert english_left(words, lang) == [], f"{url} in {lang}"


def test_a_room_or_class_with_lessons_is_not_removed_with_them(admin, school):
    from tests.admin_ui.test_timetable import add_lesson

    add_lesson(school)  # 7B in lab1
    with school() as db:
        db.query(Student).filter(Student.class_id == "7B").delete()
        db.commit()
    response = admin.post("/rooms/", id="lab1", remove="1", **DECISION)
    assert response.status_code == 400
    assert "1 lessons in this room" in response.get_data(as_text=True)
    response = admin.post("/classes/", id="7B", remove="1")
    assert response.status_code == 400
    assert "1 lessons of this class" in response.get_data(as_text=True)
    with school() as db:
        assert db.get(SchoolClass, "7B") is not None and len(history(db)) == 1


def test_forms_without_the_csrf_token_are_refused(admin, school):
    for url, form in (("/rooms/", {"id": "lab9", "name": "x", "default_group": "middle",
                                   "protocol": "1", "decision_date": "2026-11-01"}),
                      ("/classes/7B/students/", {"action": "add"}),
                      ("/timetable/import", {"text": "weekday,start,end,class,room,teacher"}),
                      ("/blocklists/update", {}), ("/notifications/", {"email": "a@b.kg"})):
        response = admin.client.post(url, data=form)
        assert response.status_code == 400, url
        assert "did not come from this site" in response.get_data(as_text=True), url
    with school() as db:
        assert len(history(db)) == 1
