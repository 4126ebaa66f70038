"""Teachers, on a phone: "my lessons now" (open, extend, close) and students' requests, live.

Regulations 2.8 and 2.9: during a lesson the teacher is responsible, and students are online
only while a teacher's session is open. The page is made for one thumb: big buttons, one tap
for each action; the request list refreshes itself every few seconds (static/lessons.js).
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_time
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin_ui.access import SUPERVISORS, roles
from admin_ui.alerts_page import SHOWN_ON_PHONE, open_alerts
from admin_ui.audit import record
from admin_ui.db import get_db, get_engine
from admin_ui.lesson_requests import approve, open_sessions_of, pending_for, refuse
from admin_ui.models import AuditAction
from admin_ui.policy_changes import parse_site_lines
from admin_ui.staff import teacher_class_ids
from policies.errors import KalkanError
from policies.models import (
    Group,
    GroupKind,
    InternetSession,
    Role,
    Room,
    SchoolClass,
    SessionMode,
    StaffUser,
)
from policies.sessions import close_session, extend_session, open_session

bp = Blueprint("lessons", __name__, url_prefix="/lessons")

LENGTHS = (20, 45, 90)  # minutes offered as one-tap choices
EXTENSIONS = (10, 45)
POLL_SECONDS = 3.0  # how often the phone asks for new requests (config LESSONS_POLL_SECONDS)


def _me() -> StaffUser:
    user = get_db().get(StaffUser, current_user.id)
    if user is None:
        abort(403)
    return user


def classes_for(user: StaffUser) -> list[SchoolClass]:
    """A teacher sees only their classes; the council and the responsible person see all."""
    db = get_db()
    query = select(SchoolClass).order_by(SchoolClass.grade, SchoolClass.id)
    if user.role == Role.TEACHER:
        query = query.where(SchoolClass.id.in_(teacher_class_ids(db, user)))
    return list(db.scalars(query))


def _student_rooms() -> list[Room]:
    """Rooms a class can be taken to: not those whose default group is staff."""
    db = get_db()
    return list(db.scalars(select(Room).join(Group, Room.default_group_id == Group.id)
                           .where(Group.kind != GroupKind.STAFF.value).order_by(Room.position)))


@bp.get("/")
@roles(*SUPERVISORS)
def index() -> str:
    db = get_db()
    me = _me()
    rooms = _student_rooms()
    classes = classes_for(me)
    alerts = open_alerts(db, me, classes=[c.id for c in classes], limit=SHOWN_ON_PHONE,
                         evidence_rows=3)
    return render_template(
        "lessons/index.html", sessions=open_sessions_of(db, me.id), classes=classes,
        rooms=rooms, room_names={r.id: r.name for r in db.scalars(select(Room))},
        pending=pending_for(db, me.id), alerts=alerts, lengths=LENGTHS,
        extensions=EXTENSIONS,
        poll_seconds=current_app.config.get("LESSONS_POLL_SECONDS", POLL_SECONDS),
        last_room=request.cookies.get("kalkan_room"))


@bp.get("/requests")
@roles(*SUPERVISORS)
def requests() -> str:
    """The live part of the page: the open requests, polled by static/lessons.js."""
    db = get_db()
    return render_template("lessons/_requests.html", pending=pending_for(db, current_user.id))


@bp.post("/open", endpoint="open")
@roles(*SUPERVISORS)
def open_() -> Response:
    db = get_db()
    me = _me()
    form = request.form
    class_id = form.get("class_id", "")
    if class_id not in {c.id for c in classes_for(me)}:
        flash(_("Choose one of your classes."), "error")
        return redirect(url_for("lessons.index"))
    focus = parse_site_lines(form.get("focus_sites", ""))
    mode = SessionMode.FOCUS if form.get("mode") == SessionMode.FOCUS else SessionMode.NORMAL
    if mode is SessionMode.FOCUS and not focus:
        flash(_("A focus lesson needs at least one site."), "error")
        return redirect(url_for("lessons.index"))
    try:
        minutes = int(form.get("minutes", "45"))
        session = open_session(db, room=form.get("room", ""), teacher=me.username,
                               class_id=class_id, minutes=minutes, mode=mode,
                               focus=focus if mode is SessionMode.FOCUS else ())
    except (KalkanError, ValueError) as exc:
        db.rollback()
        flash(_("The session was not opened: %(error)s", error=str(exc)), "error")
        return redirect(url_for("lessons.index"))
    record(db, AuditAction.SESSION_OPENED, f"session #{session.id}", room=session.room_id,
           class_id=class_id, minutes=minutes, mode=session.mode, focus=session.focus_sites)
    db.commit()
    flash(_("Internet is open for %(cls)s until %(time)s.", cls=class_id,
            time=_local_time(session)))
    response = redirect(url_for("lessons.index"))
    response.set_cookie("kalkan_room", session.room_id, max_age=180 * 86400, httponly=True,
                        samesite="Lax", secure=request.is_secure)  # the next lesson's default
    return response


def _own_session(session_id: int) -> InternetSession:
    session = get_db().get(InternetSession, session_id)
    if session is None or session.teacher_id != current_user.id:
        abort(404)  # another teacher's session is not theirs to see
    return session


@bp.post("/<int:session_id>/extend")
@roles(*SUPERVISORS)
def extend(session_id: int) -> Response:
    db = get_db()
    _own_session(session_id)
    try:
        minutes = int(request.form.get("minutes", "10"))
        session = extend_session(db, session_id, minutes)
    except (KalkanError, ValueError) as exc:
        db.rollback()
        flash(_("The session was not extended: %(error)s", error=str(exc)), "error")
        return redirect(url_for("lessons.index"))
    record(db, AuditAction.SESSION_EXTENDED, f"session #{session_id}", minutes=minutes)
    db.commit()
    flash(_("Extended until %(time)s.", time=_local_time(session)))
    return redirect(url_for("lessons.index"))


@bp.post("/<int:session_id>/close")
@roles(*SUPERVISORS)
def close(session_id: int) -> Response:
    db = get_db()
    _own_session(session_id)
    try:
        close_session(db, session_id)
    except KalkanError as exc:
        db.rollback()
        flash(_("The session was not closed: %(error)s", error=str(exc)), "error")
        return redirect(url_for("lessons.index"))
    record(db, AuditAction.SESSION_CLOSED, f"session #{session_id}")
    db.commit()
    flash(_("The session is closed."))
    return redirect(url_for("lessons.index"))


@bp.post("/requests/<int:request_id>/approve")
@roles(*SUPERVISORS)
def approve_request(request_id: int) -> Response:
    db = get_db()
    snapshot = get_engine().snapshot
    try:
        answered = approve(db, request_id, teacher=_me(), categories=snapshot.categories,
                           mandatory=snapshot.mandatory)
    except KalkanError as exc:
        db.rollback()
        flash(_("Not allowed: %(error)s", error=str(exc)), "error")
        return redirect(url_for("lessons.index"))
    host = answered[0].host
    record(db, AuditAction.REQUEST_APPROVED, host, session=answered[0].session_id,
           requests=[r.id for r in answered])
    db.commit()
    flash(_("%(host)s is allowed for this lesson.", host=host))
    return redirect(url_for("lessons.index"))


@bp.post("/requests/<int:request_id>/refuse")
@roles(*SUPERVISORS)
def refuse_request(request_id: int) -> Response:
    db = get_db()
    try:
        answered = refuse(db, request_id, teacher=_me())
    except KalkanError as exc:
        db.rollback()
        flash(_("Not refused: %(error)s", error=str(exc)), "error")
        return redirect(url_for("lessons.index"))
    record(db, AuditAction.REQUEST_REFUSED, answered[0].host, session=answered[0].session_id,
           requests=[r.id for r in answered])
    db.commit()
    flash(_("Refused: %(host)s.", host=answered[0].host))
    return redirect(url_for("lessons.index"))


def _local_time(session: InternetSession) -> str:
    return format_time(session.ends_at, "short")
