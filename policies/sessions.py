"""Teachers' internet sessions: open, extend, close and list (CLI now, the phone page later)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.database import bump_version, utcnow
from policies.document import normalise_sites
from policies.errors import KalkanError, NotFound, PolicyError
from policies.models import InternetSession, Room, SchoolClass, SessionMode, StaffUser
from policies.yamlfile import Located

MAX_MINUTES = 12 * 60


def open_session(db: Session, *, room: str, teacher: str, class_id: str | None = None,
                 minutes: int = 45, mode: SessionMode = SessionMode.NORMAL,
                 focus: Sequence[str] = (), seats: Sequence[str] = (),
                 starts_at: dt.datetime | None = None, source: str = "manual",
                 allow_downloads: bool = False) -> InternetSession:
    """Open a session for ``class_id`` in ``room`` now (or at ``starts_at``, naive UTC).

    ``allow_downloads``: the class may download programs and media files during the session
    (regulation 3.3), whatever its group's ``downloads`` says."""
    room_row = db.get(Room, room)
    if room_row is None:
        known = ", ".join(db.scalars(select(Room.id).order_by(Room.position)))
        raise NotFound(f"there is no room {room!r}", hint=f"rooms are: {known or 'none yet'}")
    teacher_row = db.scalar(select(StaffUser).where(StaffUser.username == teacher))
    if teacher_row is None:
        raise NotFound(f"there is no teacher {teacher!r}",
                       hint="give the teacher's user name, e.g. --teacher aigul")
    if class_id is not None and db.get(SchoolClass, class_id) is None:
        known = ", ".join(db.scalars(select(SchoolClass.id).order_by(SchoolClass.grade)))
        raise NotFound(f"there is no class {class_id!r}", hint=f"classes are: {known}")
    if not 1 <= minutes <= MAX_MINUTES:
        raise KalkanError(f"a session of {minutes} minutes is not possible",
                          hint=f"give between 1 and {MAX_MINUTES} minutes")
    focus_sites: list[str] = []
    if focus:
        mode = SessionMode.FOCUS
        located = Located(None, "--focus")
        try:
            focus_sites = normalise_sites(list(focus), (), located)
        except PolicyError as exc:
            raise KalkanError(f"focus site: {exc.message}", hint=exc.hint) from None
    elif mode is SessionMode.FOCUS:
        raise KalkanError("a focus session needs its list of sites",
                          hint="add --focus site1,site2")
    start = starts_at or utcnow()
    session = InternetSession(
        teacher_id=teacher_row.id, class_id=class_id, room_id=room, seats=[str(s) for s in seats],
        starts_at=start, ends_at=start + dt.timedelta(minutes=minutes), mode=mode.value,
        focus_sites=focus_sites, source=source, allow_downloads=allow_downloads)
    overlapping = _overlapping(db, room, start, session.ends_at, session.seats)
    if overlapping:
        raise KalkanError(
            f"room {room!r} already has session #{overlapping.id} until "
            f"{overlapping.ends_at:%H:%M} UTC", hint="close or extend that session instead")
    db.add(session)
    bump_version(db)
    db.commit()
    return session


def extend_session(db: Session, session_id: int, minutes: int) -> InternetSession:
    session = _get_open(db, session_id)
    if not 1 <= minutes <= MAX_MINUTES:
        raise KalkanError(f"cannot extend by {minutes} minutes",
                          hint=f"give between 1 and {MAX_MINUTES} minutes")
    ends_at = max(session.ends_at, utcnow()) + dt.timedelta(minutes=minutes)
    later = _overlapping(db, session.room_id, session.ends_at, ends_at, session.seats,
                         besides=session.id)
    if later:
        raise KalkanError(
            f"room {session.room_id!r} already has session #{later.id} from "
            f"{later.starts_at:%H:%M} UTC", hint="extend by less, or close that session first")
    session.ends_at = ends_at
    bump_version(db)
    db.commit()
    return session


def close_session(db: Session, session_id: int) -> InternetSession:
    session = _get_open(db, session_id)
    now = utcnow()
    session.closed_at = now
    session.ends_at = min(session.ends_at, now)
    bump_version(db)
    db.commit()
    return session


def list_sessions(db: Session, *, include_past: bool = False) -> list[InternetSession]:
    query = select(InternetSession).order_by(InternetSession.starts_at)
    if not include_past:
        query = query.where(InternetSession.closed_at.is_(None),
                            InternetSession.ends_at > utcnow())
    return list(db.scalars(query))


def _get_open(db: Session, session_id: int) -> InternetSession:
    session = db.get(InternetSession, session_id)
    if session is None:
        raise NotFound(f"there is no session #{session_id}",
                       hint="`kalkan session list` shows the open ones")
    if session.closed_at is not None or session.ends_at <= utcnow():
        raise KalkanError(f"session #{session_id} has already ended",
                          hint="open a new one with `kalkan session open`")
    return session


def _overlapping(db: Session, room: str, start: dt.datetime, end: dt.datetime,
                 seats: list[str], besides: int | None = None) -> InternetSession | None:
    query = select(InternetSession).where(
        InternetSession.room_id == room, InternetSession.closed_at.is_(None),
        InternetSession.ends_at > start, InternetSession.starts_at < end)
    if besides is not None:  # a session being extended does not overlap itself
        query = query.where(InternetSession.id != besides)
    for other in db.scalars(query):
        if not seats or not other.seats or set(seats) & set(other.seats):
            return other
    return None
