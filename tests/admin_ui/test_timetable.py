"""The timetable: lessons edited on the page or imported from CSV (errors name their lines), and
the gateway opening a lesson's session on its own at its start, which the engine and
`kalkan check` then follow."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from conftest import LESSON
from gateway.cli import main as kalkan
from gateway.timetable_opener import TimetableOpener
from policies.database import utcnow
from policies.engine import Engine
from policies.models import InternetSession, StaffUser
from policies.sessions import close_session
from policies.timetable import Lesson, import_csv, open_due_lessons, school_now

pytest_plugins = ["tests.admin_ui.admin_client",  # fixtures: school, app, staff
                  "tests.admin_ui.people_client"]  # english, admin

LAB1_PC = "10.10.1.101"  # lab1: the middle group, session-bound
LESSON_UTC = LESSON.astimezone(dt.UTC).replace(tzinfo=None)  # Wednesday 10:00 in Bishkek


def add_lesson(school, *, weekday: int = 2, start: str = "09:45", end: str = "10:30",
               mode: str = "normal", sites: list[str] | None = None) -> int:
    with school() as db:
        teacher = db.scalar(select(StaffUser).where(StaffUser.username == "aigul"))
        lesson = Lesson(weekday=weekday, start=start, end=end, class_id="7B", room_id="lab1",
                        teacher_id=teacher.id, mode=mode, focus_sites=sites or [])
        db.add(lesson)
        db.commit()
        return lesson.id


def sessions_in(school) -> list[InternetSession]:
    with school() as db:
        return list(db.scalars(select(InternetSession).order_by(InternetSession.id)))


def test_a_lesson_under_way_opens_its_session_and_the_class_is_online(school, tmp_path,
                                                                      sqlite_url):
    engine = Engine.from_database(school, default_group="guests")
    assert engine.decide(LAB1_PC, "bilimland.kz", at=LESSON).reason == "no_session"
    add_lesson(school)
    with school() as db:
        opened = open_due_lessons(db, now=LESSON_UTC)
    [session] = sessions_in(school)
    assert opened == [session.id] and session.source == "timetable"
    with school() as db:
        assert db.get(InternetSession, session.id).teacher.username == "aigul"
    assert (session.class_id, session.room_id) == ("7B", "lab1")
    assert session.ends_at - LESSON_UTC == dt.timedelta(minutes=30)  # until the lesson's end
    engine.refresh()
    assert engine.decide(LAB1_PC, "bilimland.kz", at=LESSON).blocked is False

    config = tmp_path / "kalkan.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\ndatabase:\n  url: \"{sqlite_url}\"\n")
    output = CliRunner().invoke(kalkan, ["--config", str(config), "check", "bilimland.kz",
                                         "--client", LAB1_PC, "--at",
                                         "2030-11-27T10:05"]).output
    assert output.startswith("Allowed"), output

    # Opened once a day: the teacher closes it early and the opener leaves it closed.
    with school() as db:
        close_session(db, session.id)
        assert open_due_lessons(db, now=LESSON_UTC + dt.timedelta(minutes=1)) == []


def test_a_focus_lesson_opens_a_focus_session_and_other_days_do_not_open(school):
    add_lesson(school, mode="focus", sites=["bilimland.kz"])
    add_lesson(school, weekday=3)  # Thursday
    add_lesson(school, start="11:00", end="11:45")  # later today
    with school() as db:
        open_due_lessons(db, now=LESSON_UTC)
    [session] = sessions_in(school)
    assert session.mode == "focus" and session.focus_sites == ["bilimland.kz"]
    engine = Engine.from_database(school, default_group="guests")
    assert engine.decide(LAB1_PC, "wikipedia.org", at=LESSON).reason == "session_mode"


def test_a_room_with_a_session_keeps_it(school):
    from policies.sessions import open_session

    with school() as db:
        manual = open_session(db, room="lab1", teacher="bakyt", class_id="7B", minutes=60,
                              starts_at=LESSON_UTC - dt.timedelta(minutes=20))
    add_lesson(school)
    with school() as db:
        assert open_due_lessons(db, now=LESSON_UTC) == []
        assert db.get(Lesson, 1).last_opened_on == dt.date(2030, 11, 27)
    assert [s.id for s in sessions_in(school)] == [manual.id]


def test_the_opener_thread_opens_the_lesson_of_this_minute(school):
    with school() as db:
        local = school_now(db)
    minute = local.hour * 60 + local.minute
    if minute > 23 * 60 + 55:
        pytest.skip("too close to midnight for a lesson of a few minutes")
    add_lesson(school, weekday=local.weekday(), start=f"{minute // 60:02d}:{minute % 60:02d}",
               end=f"{(minute + 3) // 60:02d}:{(minute + 3) % 60:02d}")
    opener = TimetableOpener(school, interval=0.1).start()
    try:
        deadline = time.monotonic() + 5
        while not sessions_in(school):
            assert time.monotonic() < deadline, "the opener did not open the lesson"
            time.sleep(0.05)
    finally:
        opener.stop()
    [session] = sessions_in(school)
    assert session.starts_at <= utcnow() < session.ends_at and opener.opened == 1


def test_csv_errors_name_their_lines_and_nothing_is_imported(school):
    text = ("weekday,start,end,class,room,teacher,mode,sites\n"
            "mon,08:30,09:15,7B,lab1,aigul,normal,\n"
            "funday,08:30,09:15,7B,lab1,aigul,,\n"
            "tue,10:00,09:00,7B,lab1,aigul,,\n"
            "wed,10:00,10:45,7B,nowhere,aigul,,\n"
            "thu,10:00,10:45,7B,lab1,aigul,focus,\n")
    with school() as db, pytest.raises(Exception) as caught:
        import_csv(db, text)
    message = str(caught.value)
    assert "line 3: 'funday' is not a day of the week" in message
    with school() as db:  # the format errors come first; fix them and the rest are named
        fixed = text.replace("funday", "mon").replace("10:00,09:00", "10:00,10:45")
        with pytest.raises(Exception) as caught:
            import_csv(db, fixed)
        assert "line 5: there is no room 'nowhere'" in str(caught.value)
        assert "line 6: a focus lesson needs its list of sites" in str(caught.value)
        assert db.scalar(select(Lesson.id)) is None


def test_lessons_that_overlap_in_a_room_are_refused(school):
    add_lesson(school)  # wed 09:45–10:30 in lab1
    text = ("weekday,start,end,class,room,teacher\n"
            "wed,10:00,10:45,10A,lab1,bakyt\n"  # lab1 is taken until 10:30
            "wed,10:00,10:45,10A,lab2,bakyt\n"
            "wed,10:30,11:15,10A,lab2,bakyt\n")  # overlaps the line above
    with school() as db, pytest.raises(Exception) as caught:
        import_csv(db, text)
    message = str(caught.value)
    assert "line 2: room 'lab1' already has a lesson of 7B on wed 09:45–10:30" in message
    assert "line 4: room 'lab2' already has a lesson of 10A on wed 10:00–10:45" in message
    with school() as db:  # replacing the timetable: the old lesson does not count
        lessons = import_csv(db, text.replace("10:30,11:15", "10:45,11:30"), replace=True)
        db.commit()
    assert len(lessons) == 3


def test_the_page_adds_imports_and_removes_lessons(admin, school):
    response = admin.post("/timetable/", weekday="wed", start="10:00", end="10:45",
                          **{"class": "7B"}, room="lab1", teacher="aigul", mode="focus",
                          sites="bilimland.kz\nlib.kg")
    assert response.status_code == 302, response.get_data(as_text=True)
    html = admin.page("/timetable/")
    assert "Wednesday" in html and "bilimland.kz, lib.kg" in html
    bad = admin.post("/timetable/import", text="weekday,start,end,class,room,teacher\n"
                     "mon,8:30,25:00,7B,lab1,aigul\n")
    assert bad.status_code == 400
    assert "line 2: &#39;25:00&#39; is not a time of day" in bad.get_data(as_text=True)
    good = admin.post("/timetable/import", replace="1", text=(
        "weekday,start,end,class,room,teacher\nmon,8:30,9:15,7B,lab1,aigul\n"
        "fri,12:00,12:45,10A,lab2,bakyt\n"))
    assert good.status_code == 302
    with school() as db:
        lessons = db.scalars(select(Lesson).order_by(Lesson.weekday)).all()
        assert [(x.weekday, x.start, x.class_id) for x in lessons] == [
            (0, "08:30", "7B"), (4, "12:00", "10A")]
        first = lessons[0].id
    assert admin.post(f"/timetable/{first}/remove").status_code == 302
    with school() as db:
        assert db.get(Lesson, first) is None


def test_the_teacher_sees_the_opened_lesson_on_her_phone_and_closes_it(english, staff, school):
    with school() as db:
        local = school_now(db)
    minute = local.hour * 60 + local.minute
    if minute > 23 * 60 + 50:
        pytest.skip("too close to midnight for a lesson of a few minutes")
    add_lesson(school, weekday=local.weekday(), start=f"{minute // 60:02d}:{minute % 60:02d}",
               end=f"{(minute + 5) // 60:02d}:{(minute + 5) % 60:02d}")
    with school() as db:
        [session_id] = open_due_lessons(db)
    aigul = staff("aigul")
    assert f'id="session-{session_id}"' in aigul.page("/lessons/")
    assert aigul.post(f"/lessons/{session_id}/close").status_code == 302
    with school() as db:
        assert db.get(InternetSession, session_id).closed_at is not None
        assert open_due_lessons(db) == []  # closed by the teacher: not opened again today


def test_the_timetable_and_preferences_work_on_postgresql_too(any_db_url):
    from gateway.notify.preferences import NotificationPreference, NotifyKind, channels_for
    from policies.database import migrate, open_engine, session_factory
    from policies.demo import seed_demo

    engine = open_engine(any_db_url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as db:
        seed_demo(db)
    add_lesson(sessions, mode="focus", sites=["bilimland.kz"])
    with sessions() as db:
        [session_id] = open_due_lessons(db, now=LESSON_UTC)
        assert db.get(InternetSession, session_id).focus_sites == ["bilimland.kz"]
        assert db.get(Lesson, 1).last_opened_on == dt.date(2030, 11, 27)
        aigul = db.scalar(select(StaffUser.id).where(StaffUser.username == "aigul"))
        db.add(NotificationPreference(user_id=aigul, by_email=False, by_telegram=True,
                                      alerts=True, daily_status=False, requests=False))
        db.commit()
        assert channels_for(db, aigul, NotifyKind.ALERTS) == (False, True)
        assert channels_for(db, aigul, NotifyKind.DAILY_STATUS) == (False, False)
    engine.dispose()


def test_a_lesson_is_changed_in_place(admin, school):
    lesson_id = add_lesson(school)  # wed 09:45–10:30, lab1
    with school() as db:
        open_due_lessons(db, now=LESSON_UTC)  # opened today at 10:00
    html = admin.page("/timetable/", edit=str(lesson_id))
    assert f'name="lesson" value="{lesson_id}"' in html and 'value="09:45"' in html
    response = admin.post("/timetable/", lesson=str(lesson_id), weekday="wed", start="11:00",
                          end="11:45", **{"class": "7B"}, room="lab1", teacher="aigul",
                          mode="normal")
    assert response.status_code == 302, response.get_data(as_text=True)
    with school() as db:
        [lesson] = db.scalars(select(Lesson)).all()
        assert (lesson.id, lesson.start, lesson.end, lesson.last_opened_on) == (
            lesson_id, "11:00", "11:45", None)  # moved: it opens again at 11:00
        assert len(open_due_lessons(db, now=LESSON_UTC + dt.timedelta(hours=1))) == 1
