"""The timetable (regulations 2.1, 2.8): weekly lessons that open their class's internet
session on their own at the start, for their length (``gateway/timetable_opener.py``). The
teacher still extends or closes the session from the phone. Lessons are added one by one or
imported from CSV (every bad line is named, and then nothing is imported).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from admin_ui.access import READERS, roles
from admin_ui.audit import record
from admin_ui.db import get_db
from admin_ui.models import AuditAction
from admin_ui.policy_changes import parse_site_lines
from policies.document import DAY_NAMES
from policies.errors import KalkanError
from policies.models import Role, Room, SchoolClass, SessionMode, StaffUser
from policies.timetable import (
    CSV_COLUMNS,
    Lesson,
    LessonDraft,
    check_lesson,
    import_csv,
    parse_weekday,
)

bp = Blueprint("timetable", __name__, url_prefix="/timetable")

MAX_CSV = 1 << 20


def weekday_names() -> list[str]:
    return [_("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"),
            _("Saturday"), _("Sunday")]


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    db = get_db()
    lessons = db.scalars(select(Lesson).order_by(Lesson.weekday, Lesson.start,
                                                 Lesson.room_id)).all()
    return render_template(
        "people/timetable.html", lessons=lessons, days=weekday_names(), day_ids=DAY_NAMES,
        classes=db.scalars(select(SchoolClass).order_by(SchoolClass.grade, SchoolClass.id)).all(),
        rooms=db.scalars(select(Room).order_by(Room.position)).all(),
        teachers=db.scalars(select(StaffUser).where(StaffUser.active.is_(True))
                            .order_by(StaffUser.full_name)).all(),
        columns=",".join(CSV_COLUMNS), form=_form_for(db.get(Lesson, int(edit)) if (
            edit := request.args.get("edit", "")).isdigit() and request.method == "GET"
            else None), **extra), status


def _form_for(lesson: Lesson | None) -> MultiDict[str, str]:
    """The form as sent, or (the "change" link) the lesson as it is."""
    if lesson is None:
        return request.form
    return MultiDict({"lesson": str(lesson.id), "weekday": DAY_NAMES[lesson.weekday],
                      "start": lesson.start, "end": lesson.end, "class": lesson.class_id,
                      "room": lesson.room_id, "teacher": lesson.teacher.username,
                      "mode": lesson.mode, "sites": "\n".join(lesson.focus_sites)})


@bp.get("/")
@roles(*READERS)
def index() -> tuple[str, int]:
    return _page()


@bp.post("/")
@roles(Role.RESPONSIBLE)
def add() -> Response | tuple[str, int]:
    """A new lesson, or (with ``lesson``) the same lesson changed."""
    db = get_db()
    form = request.form
    lesson_id = form.get("lesson", "")
    existing = db.get(Lesson, int(lesson_id)) if lesson_id.isdigit() else None
    if lesson_id and existing is None:
        abort(404)
    try:
        mode = form.get("mode", SessionMode.NORMAL.value)
        if mode not in (SessionMode.NORMAL.value, SessionMode.FOCUS.value):
            raise KalkanError(_("Choose normal or focus mode."))
        draft = LessonDraft(
            weekday=parse_weekday(form.get("weekday", "")), start=form.get("start", ""),
            end=form.get("end", ""), class_id=form.get("class", ""),
            room_id=form.get("room", ""), teacher=form.get("teacher", ""),
            mode=SessionMode(mode), focus_sites=tuple(parse_site_lines(form.get("sites", ""))))
        others = [other for other in db.scalars(select(Lesson).where(
            Lesson.room_id == draft.room_id, Lesson.weekday == draft.weekday))
            if other is not existing]  # a changed lesson does not overlap itself
        lesson = check_lesson(db, draft, others=others)
    except KalkanError as exc:
        db.rollback()
        return _page(400, error=str(exc))
    if existing is not None:
        if (existing.weekday, existing.start) != (lesson.weekday, lesson.start):
            existing.last_opened_on = None  # moved: it may open again at its new time
        for field in ("weekday", "start", "end", "class_id", "room_id", "teacher_id", "mode",
                      "focus_sites"):
            setattr(existing, field, getattr(lesson, field))
        lesson = existing
    else:
        db.add(lesson)
    db.flush()
    record(db, AuditAction.LESSON_SAVED, f"lesson {lesson.id}", weekday=lesson.weekday,
           start=lesson.start, end=lesson.end, class_id=lesson.class_id, room=lesson.room_id,
           teacher=form.get("teacher", ""), mode=lesson.mode)
    db.commit()
    flash(_("Lesson saved.") if existing is not None else _("Lesson added."))
    return redirect(url_for("timetable.index"))


@bp.post("/<int:lesson_id>/remove")
@roles(Role.RESPONSIBLE)
def remove(lesson_id: int) -> Response:
    db = get_db()
    lesson = db.get(Lesson, lesson_id)
    if lesson is None:
        abort(404)
    db.delete(lesson)
    record(db, AuditAction.LESSON_REMOVED, f"lesson {lesson_id}", class_id=lesson.class_id,
           room=lesson.room_id)
    db.commit()
    flash(_("Lesson removed."))
    return redirect(url_for("timetable.index"))


@bp.post("/import")
@roles(Role.RESPONSIBLE)
def import_() -> Response | tuple[str, int]:
    db = get_db()
    upload = request.files.get("file")
    raw = upload.read(MAX_CSV + 1) if upload is not None and upload.filename else (
        request.form.get("text", "").encode())
    try:
        if len(raw) > MAX_CSV:
            raise KalkanError(_("The file is larger than %(mb)d MB.", mb=MAX_CSV >> 20))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise KalkanError(_("The file is not UTF-8 text: save it from the spreadsheet as "
                                "CSV UTF-8.")) from None
        replace = "replace" in request.form
        lessons = import_csv(db, text, replace=replace)
    except KalkanError as exc:
        db.rollback()
        return _page(400, import_error=str(exc))
    record(db, AuditAction.TIMETABLE_IMPORTED, "timetable", lessons=len(lessons),
           replaced=replace)
    db.commit()
    flash(_("%(n)d lessons imported.", n=len(lessons)))
    return redirect(url_for("timetable.index"))
