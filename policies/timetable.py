"""The timetable: weekly lessons (class, room, teacher, times, mode) and opening their sessions.

A lesson opens its internet session on its own at its start, for its length
(:func:`open_due_lessons`, run every few seconds by :mod:`gateway.timetable_opener`); the
teacher can still extend or close it from the phone. ``last_opened_on`` makes each lesson open
at most once a day, so a session the teacher closed early stays closed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, Date, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from policies.database import utcnow
from policies.document import DAY_NAMES, normalise_sites
from policies.errors import KalkanError, PolicyError
from policies.models import Base, Room, School, SchoolClass, SessionMode, StaffUser
from policies.sessions import open_session
from policies.yamlfile import Located

log = logging.getLogger(__name__)

TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
CSV_COLUMNS = ("weekday", "start", "end", "class", "room", "teacher", "mode", "sites")


class Lesson(Base):
    """One weekly lesson; times are the school's local time, ``weekday`` 0 is Monday."""

    __tablename__ = "lessons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    weekday: Mapped[int] = mapped_column(Integer, index=True)
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))
    class_id: Mapped[str] = mapped_column(ForeignKey("school_classes.id", ondelete="CASCADE"))
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    teacher_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16), default=SessionMode.NORMAL.value)
    focus_sites: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_opened_on: Mapped[dt.date | None] = mapped_column(Date)
    teacher: Mapped[StaffUser] = relationship()


@dataclass(frozen=True)
class LessonDraft:
    weekday: int
    start: str
    end: str
    class_id: str
    room_id: str
    teacher: str  # user name
    mode: SessionMode = SessionMode.NORMAL
    focus_sites: tuple[str, ...] = ()


def parse_weekday(text: str) -> int:
    """``mon``…``sun`` (or 1–7, Monday first) → 0–6."""
    value = text.strip().lower()[:3]
    if value in DAY_NAMES:
        return DAY_NAMES.index(value)
    if value.isdigit() and 1 <= int(value) <= 7:
        return int(value) - 1
    raise KalkanError(f"{text!r} is not a day of the week",
                      hint="write mon, tue, wed, thu, fri, sat or sun (or 1–7, Monday is 1)")


def parse_time(text: str) -> str:
    match = TIME.match(text.strip())
    if match is None:
        raise KalkanError(f"{text!r} is not a time of day", hint="write it like 08:30")
    return f"{int(match[1]):02d}:{match[2]}"


def minutes_of(hhmm: str) -> int:
    hour, minute = hhmm.split(":")
    return int(hour) * 60 + int(minute)


def check_lesson(db: Session, draft: LessonDraft, *, others: list[Lesson] | None = None
                 ) -> Lesson:
    """A new (unsaved) :class:`Lesson` from ``draft``, or a :class:`KalkanError` saying what
    is wrong and what to write instead. ``others`` are the lessons it must not overlap in its
    room (default: those in the database)."""
    start, end = parse_time(draft.start), parse_time(draft.end)
    if minutes_of(end) <= minutes_of(start):
        raise KalkanError(f"the lesson ends ({end}) before it starts ({start})",
                          hint="give the end after the start, on the same day")
    if db.get(SchoolClass, draft.class_id) is None:
        known = ", ".join(db.scalars(select(SchoolClass.id).order_by(SchoolClass.grade)))
        raise KalkanError(f"there is no class {draft.class_id!r}", hint=f"classes are: {known}")
    if db.get(Room, draft.room_id) is None:
        known = ", ".join(db.scalars(select(Room.id).order_by(Room.position)))
        raise KalkanError(f"there is no room {draft.room_id!r}", hint=f"rooms are: {known}")
    teacher = db.scalar(select(StaffUser).where(StaffUser.username == draft.teacher))
    if teacher is None:
        raise KalkanError(f"there is no staff account {draft.teacher!r}",
                          hint="give the teacher's user name, as on the Accounts page")
    sites: list[str] = []
    if draft.mode is SessionMode.FOCUS:
        if not draft.focus_sites:
            raise KalkanError("a focus lesson needs its list of sites",
                              hint="list the sites the class may open, e.g. lib.kg bilimland.kz")
        try:
            sites = normalise_sites(list(draft.focus_sites), (), Located(None, "sites"))
        except PolicyError as exc:
            raise KalkanError(exc.message, hint=exc.hint) from None
    elif draft.mode is not SessionMode.NORMAL:
        raise KalkanError(f"a lesson's mode is normal or focus, not {draft.mode.value!r}",
                          hint="write normal or focus")
    if others is None:
        others = list(db.scalars(select(Lesson).where(Lesson.room_id == draft.room_id,
                                                      Lesson.weekday == draft.weekday)))
    for other in others:
        # One room, one session at a time: an overlapping lesson could never be opened.
        if (other.room_id == draft.room_id and other.weekday == draft.weekday
                and minutes_of(other.start) < minutes_of(end)
                and minutes_of(start) < minutes_of(other.end)):
            raise KalkanError(
                f"room {draft.room_id!r} already has a lesson of {other.class_id} on "
                f"{DAY_NAMES[other.weekday]} {other.start}–{other.end}",
                hint="choose another time or room, or remove that lesson first")
    return Lesson(weekday=draft.weekday, start=start, end=end, class_id=draft.class_id,
                  room_id=draft.room_id, teacher_id=teacher.id, mode=draft.mode.value,
                  focus_sites=sites)


def parse_csv(text: str) -> list[LessonDraft]:
    """Lessons from CSV with the header ``weekday,start,end,class,room,teacher,mode,sites``
    (``mode`` and ``sites`` may be empty; sites separated by spaces). Every bad line is
    reported with its number, all at once."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    rows = list(reader)
    if not rows:
        raise KalkanError("the file is empty", hint="the first line names the columns: "
                          + ",".join(CSV_COLUMNS))
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in CSV_COLUMNS[:6] if c not in header]
    if missing:
        raise KalkanError(f"line 1: the columns {', '.join(missing)} are missing",
                          hint="the first line names the columns: " + ",".join(CSV_COLUMNS))
    drafts, errors = [], []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)}
        try:
            mode_text = values.get("mode", "") or SessionMode.NORMAL.value
            if mode_text not in (SessionMode.NORMAL.value, SessionMode.FOCUS.value):
                raise KalkanError(f"{mode_text!r} is not a mode", hint="write normal or focus")
            drafts.append(LessonDraft(
                weekday=parse_weekday(values["weekday"]), start=parse_time(values["start"]),
                end=parse_time(values["end"]), class_id=values["class"],
                room_id=values["room"], teacher=values["teacher"],
                mode=SessionMode(mode_text),
                focus_sites=tuple(re.split(r"[\s;]+", values.get("sites", "").strip()))
                if values.get("sites", "").strip() else ()))
        except KalkanError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        raise KalkanError("\n".join(errors), hint="fix these lines; nothing was imported")
    return drafts


def import_csv(db: Session, text: str, *, replace: bool = False) -> list[Lesson]:
    """Check every line first, then add them all (``replace``: instead of the whole
    timetable); the caller commits."""
    drafts = parse_csv(text)
    lessons: list[Lesson] = []
    errors = []
    kept = [] if replace else list(db.scalars(select(Lesson)))
    for number, draft in enumerate(drafts, start=2):
        try:
            lessons.append(check_lesson(db, draft, others=kept + lessons))
        except KalkanError as exc:
            errors.append(f"line {number}: {exc}")
    if errors:
        raise KalkanError("\n".join(errors), hint="fix these lines; nothing was imported")
    if replace:
        for old in db.scalars(select(Lesson)):
            db.delete(old)
    db.add_all(lessons)
    return lessons


def school_now(db: Session, now: dt.datetime | None = None) -> dt.datetime:
    """``now`` (naive UTC) in the school's time zone."""
    zone = ZoneInfo(db.scalar(select(School.timezone).limit(1)) or "UTC")
    return (now or utcnow()).replace(tzinfo=dt.UTC).astimezone(zone)


def open_due_lessons(db: Session, now: dt.datetime | None = None) -> list[int]:
    """Open the session of every lesson under way now that has not been opened today;
    returns the new sessions' ids. A room that already has a session (the teacher opened
    one by hand) keeps it: the lesson is marked opened and logged, not forced."""
    now = now or utcnow()
    local = school_now(db, now)
    minute = local.hour * 60 + local.minute
    today = local.date()
    opened = []
    for lesson in db.scalars(select(Lesson).where(Lesson.weekday == local.weekday())):
        if lesson.last_opened_on == today:
            continue
        if not minutes_of(lesson.start) <= minute < minutes_of(lesson.end):
            continue
        lesson.last_opened_on = today
        # Until the lesson's end in the school's time, from now (a late start is shorter).
        end_local = local.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(
            minutes=minutes_of(lesson.end))
        minutes = max(1, round((end_local - local).total_seconds() / 60))
        try:
            session = open_session(
                db, room=lesson.room_id, teacher=lesson.teacher.username,
                class_id=lesson.class_id, minutes=minutes, mode=SessionMode(lesson.mode),
                focus=lesson.focus_sites if lesson.mode == SessionMode.FOCUS else (),
                starts_at=now, source="timetable")
        except KalkanError as exc:
            db.rollback()
            db.get(Lesson, lesson.id).last_opened_on = today
            db.commit()
            log.info("timetable: lesson %d not opened: %s", lesson.id, exc)
            continue
        opened.append(session.id)
        log.info("timetable: opened session %d for lesson %d", session.id, lesson.id)
    db.commit()
    return opened
