"""Teachers on a phone: open, extend and close a session; students' requests, answered live."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from admin_ui.models import AuditAction, AuditEntry
from policies.database import read_version, utcnow
from policies.engine import Engine
from policies.models import InternetSession, RequestKind, RequestStatus, SiteRequest
from policies.sessions import open_session

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff

PC01 = "10.10.1.101"  # lab1, seat 1


def add_request(school, session_id: int, host: str, *, client: str = PC01,
                message: str = "", device: str | None = "lab1-pc01",
                category: str | None = None) -> int:
    """What the block page stores when a student asks to allow ``host`` for the lesson."""
    with school() as db:
        req = SiteRequest(kind=RequestKind.LESSON.value, created_at=utcnow(), client=client,
                          device_id=device, room_id="lab1", group_id="middle",
                          session_id=session_id, host=host, category=category,
                          reason="session_mode", message=message, language="ky")
        db.add(req)
        db.commit()
        return req.id


def open_for(school, teacher: str = "aigul", **kw) -> int:
    with school() as db:
        return open_session(db, room="lab1", teacher=teacher, class_id="7B", **kw).id


def sessions_of(school) -> list[InternetSession]:
    with school() as db:
        return list(db.scalars(select(InternetSession).order_by(InternetSession.id)))


def status_of(school, request_id: int) -> str:
    with school() as db:
        return db.get(SiteRequest, request_id).status


@pytest.fixture
def aigul(staff):
    return staff("aigul")


def test_a_teacher_sees_only_their_classes(aigul):
    html = aigul.page("/lessons/", lang="en")
    assert "My lessons now" in html
    offered = re.findall(r'name="class_id" value="([^"]+)"', html)
    assert offered == ["7A", "7B", "8A"]  # class teacher of 7B; teaches 7A and 8A
    assert 'value="staffroom"' not in html  # a class is not taken to the staff room


def test_one_tap_opens_a_session_for_a_class(aigul, school):
    response = aigul.post("/lessons/open?lang=en", class_id="7B", room="lab1", minutes="45",
                          mode="normal")
    assert response.status_code == 302
    [session] = sessions_of(school)
    assert (session.class_id, session.room_id, session.mode) == ("7B", "lab1", "normal")
    assert round((session.ends_at - session.starts_at).total_seconds() / 60) == 45
    html = aigul.page("/lessons/", lang="en")
    assert f'id="session-{session.id}"' in html and "Internet is open for 7B until" in html
    assert aigul.client.get_cookie("kalkan_room").value == "lab1"  # the next lesson's default
    with school() as db:
        entry = db.scalar(select(AuditEntry).where(
            AuditEntry.action == AuditAction.SESSION_OPENED.value))
        assert entry.actor == "aigul" and entry.detail["class_id"] == "7B"


def test_a_focus_session_allows_only_its_sites(aigul, school):
    response = aigul.post("/lessons/open?lang=en", class_id="7B", room="lab1", minutes="20",
                          mode="focus", focus_sites="")
    assert "A focus lesson needs at least one site." in aigul.page("/lessons/", lang="en")
    assert sessions_of(school) == []
    response = aigul.post("/lessons/open", class_id="7B", room="lab1", minutes="20",
                          mode="focus", focus_sites="bilimland.kz\nlib.kg")
    assert response.status_code == 302
    [session] = sessions_of(school)
    assert session.focus_sites == ["bilimland.kz", "lib.kg"]
    engine = Engine.from_database(school)
    assert not engine.decide(PC01, "bilimland.kz").blocked
    assert engine.decide(PC01, "wikipedia.org").reason == "session_mode"


def test_extend_and_close(aigul, school):
    sid = open_for(school, minutes=45)
    before = sessions_of(school)[0].ends_at
    assert aigul.post(f"/lessons/{sid}/extend", minutes="10").status_code == 302
    assert round((sessions_of(school)[0].ends_at - before).total_seconds()) == 600
    assert aigul.post(f"/lessons/{sid}/close").status_code == 302
    assert sessions_of(school)[0].closed_at is not None
    assert f'id="session-{sid}"' not in aigul.page("/lessons/")


def test_a_teacher_cannot_touch_another_teachers_session_or_class(staff, school):
    sid = open_for(school, teacher="aigul")
    bakyt = staff("bakyt")
    assert bakyt.post(f"/lessons/{sid}/close").status_code == 404
    assert bakyt.post(f"/lessons/{sid}/extend", minutes="45").status_code == 404
    assert sessions_of(school)[0].closed_at is None
    bakyt.post("/lessons/open", class_id="7B", room="lab2", minutes="45")
    assert len(sessions_of(school)) == 1  # 7B is not one of his classes


def test_requests_arrive_grouped_by_site_and_escaped(aigul, staff, school):
    sid = open_for(school)
    add_request(school, sid, "wikipedia.org", message="<script>alert(1)</script> for history")
    add_request(school, sid, "wikipedia.org", client="10.10.1.102", device="<b>pc02</b>")
    add_request(school, sid, "rutube.ru")
    html = aigul.page("/lessons/requests", lang="en")
    assert html.count('class="card request"') == 2
    assert "wikipedia.org" in html and "students: 2" in html and "rutube.ru" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>" not in html and "&lt;b&gt;pc02&lt;/b&gt;" in html
    assert "Allow for this lesson" in html
    assert "No requests." in staff("bakyt").page("/lessons/requests", lang="en")


def test_approving_allows_the_site_for_that_session_only(aigul, school):
    sid = open_for(school)
    first = add_request(school, sid, "wikipedia.org")
    second = add_request(school, sid, "wikipedia.org", client="10.10.1.102")
    other = add_request(school, sid, "rutube.ru")
    with school() as db:
        version = read_version(db)
    assert aigul.post(f"/lessons/requests/{first}/approve").status_code == 302
    assert [status_of(school, r) for r in (first, second, other)] == ["approved", "approved",
                                                                      "open"]
    [session] = sessions_of(school)
    assert session.allowed_sites == ["wikipedia.org"]
    with school() as db:
        assert read_version(db) > version  # the gateway recompiles on this
        req = db.get(SiteRequest, first)
        assert req.decided_by == "aigul" and req.decided_at is not None
        entry = db.scalar(select(AuditEntry).where(
            AuditEntry.action == AuditAction.REQUEST_APPROVED.value))
        assert entry.target == "wikipedia.org" and entry.detail["requests"] == [first, second]
    assert aigul.post(f"/lessons/requests/{other}/refuse").status_code == 302
    assert status_of(school, other) == RequestStatus.REFUSED
    assert "No requests." in aigul.page("/lessons/requests", lang="en")


def test_a_mandatory_category_cannot_be_approved(aigul, school):
    sid = open_for(school)
    rid = add_request(school, sid, "pornhub.com")
    aigul.post(f"/lessons/requests/{rid}/approve")
    assert "regulation 3.3" in aigul.page("/lessons/", lang="en")
    assert status_of(school, rid) == "open"
    assert sessions_of(school)[0].allowed_sites == []


def test_only_the_sessions_teacher_answers_its_requests(staff, school):
    sid = open_for(school)
    rid = add_request(school, sid, "wikipedia.org")
    staff("bakyt").post(f"/lessons/requests/{rid}/approve")
    staff("admin").post(f"/lessons/requests/{rid}/refuse")
    assert status_of(school, rid) == "open"


def test_a_request_of_an_ended_session_cannot_be_approved(aigul, school):
    sid = open_for(school)
    rid = add_request(school, sid, "wikipedia.org")
    aigul.post(f"/lessons/{sid}/close")
    aigul.post(f"/lessons/requests/{rid}/approve")
    assert status_of(school, rid) == "open"


def test_an_approval_is_enforced_by_the_gateway_within_two_seconds(aigul, school):
    sid = open_for(school, focus=["bilimland.kz"])
    engine = Engine.from_database(school)
    engine.watch(0.2)  # the gateway polls every policy.reload_interval (1 s by default)
    try:
        assert engine.decide(PC01, "wikipedia.org").blocked
        rid = add_request(school, sid, "wikipedia.org")
        aigul.post(f"/lessons/requests/{rid}/approve")
        approved = time.monotonic()
        while engine.decide(PC01, "wikipedia.org").blocked:
            assert time.monotonic() - approved < 2.0, "not enforced within 2 s"
            time.sleep(0.05)
        assert engine.decide("10.10.2.50", "wikipedia.org").reason != "session_mode"
    finally:
        engine.stop()

