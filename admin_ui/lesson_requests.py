"""Students' "allow this site for my lesson" requests, as the session's teacher sees them.

The block page stores a :class:`~policies.models.SiteRequest` of kind ``lesson``; the teacher
approves or refuses it with one tap. Approval adds the site to ``allowed_sites`` of that
session only and bumps the state version, so every gateway process recompiles its snapshot
within about a second. Requests for the same site in the same session are answered together.
Mandatory categories (regulation 3.3) can never be approved.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.database import bump_version, utcnow
from policies.domain import InvalidDomain, normalise_domain
from policies.errors import KalkanError, NotFound
from policies.lookup import CategoryLookup
from policies.models import (
    InternetSession,
    RequestKind,
    RequestStatus,
    SiteRequest,
    StaffUser,
)


@dataclass(frozen=True)
class PendingSite:
    """One site asked for in one session, by one or more students."""

    session: InternetSession
    host: str
    requests: tuple[SiteRequest, ...]

    @property
    def first(self) -> SiteRequest:
        return self.requests[0]

    @property
    def asked_at(self) -> dt.datetime:
        return self.first.created_at


class MandatoryCategory(KalkanError):
    """The site is in a category regulation 3.3 bars for students: no teacher may allow it."""


def open_sessions_of(db: Session, teacher_id: int) -> list[InternetSession]:
    now = utcnow()
    return list(db.scalars(select(InternetSession).where(
        InternetSession.teacher_id == teacher_id, InternetSession.closed_at.is_(None),
        InternetSession.ends_at > now).order_by(InternetSession.starts_at)))


def pending_for(db: Session, teacher_id: int) -> list[PendingSite]:
    """Open lesson requests in the teacher's open sessions, oldest first, one per site."""
    sessions = {s.id: s for s in open_sessions_of(db, teacher_id)}
    if not sessions:
        return []
    rows = db.scalars(select(SiteRequest).where(
        SiteRequest.kind == RequestKind.LESSON.value,
        SiteRequest.status == RequestStatus.OPEN.value,
        SiteRequest.session_id.in_(sessions)).order_by(SiteRequest.created_at, SiteRequest.id))
    grouped: dict[tuple[int, str], list[SiteRequest]] = {}
    for row in rows:
        grouped.setdefault((row.session_id or 0, row.host), []).append(row)
    return [PendingSite(sessions[sid], host, tuple(reqs)) for (sid, host), reqs in
            grouped.items()]


def approve(db: Session, request_id: int, *, teacher: StaffUser, categories: CategoryLookup,
            mandatory: frozenset[str]) -> list[SiteRequest]:
    """Allow the request's site for its session; returns every request it answered."""
    req, session = _own_open_request(db, request_id, teacher)
    try:
        host = normalise_domain(req.host)
    except InvalidDomain as exc:
        raise KalkanError(f"{req.host!r} is not a site that can be allowed: {exc}") from None
    barred = [m.category for m in categories.lookup(host) if m.category in mandatory]
    if (req.category and req.category in mandatory) or barred:
        category = req.category if req.category in mandatory else barred[0]
        raise MandatoryCategory(
            f"{host} is in the category {category!r}, which regulation 3.3 bars for students",
            hint="no rule and no teacher can allow it")
    if host not in (session.allowed_sites or []):
        session.allowed_sites = [*(session.allowed_sites or []), host]  # a new list: JSON
    answered = _answer_all(db, session, req.host, RequestStatus.APPROVED, teacher)
    bump_version(db)  # every gateway process recompiles and allows it within about a second
    db.commit()
    return answered


def refuse(db: Session, request_id: int, *, teacher: StaffUser,
           answer: str | None = None) -> list[SiteRequest]:
    req, session = _own_open_request(db, request_id, teacher)
    answered = _answer_all(db, session, req.host, RequestStatus.REFUSED, teacher, answer)
    db.commit()
    return answered


def _own_open_request(db: Session, request_id: int, teacher: StaffUser
                      ) -> tuple[SiteRequest, InternetSession]:
    req = db.get(SiteRequest, request_id)
    session = db.get(InternetSession, req.session_id) if req and req.session_id else None
    # Another teacher's request is "not found": a teacher sees only their own sessions.
    if req is None or req.kind != RequestKind.LESSON or session is None or (
            session.teacher_id != teacher.id):
        raise NotFound(f"there is no request #{request_id} for you")
    if req.status != RequestStatus.OPEN:
        raise KalkanError(f"request #{request_id} has already been answered ({req.status})")
    if session.closed_at is not None or session.ends_at <= utcnow():
        raise KalkanError(f"session #{session.id} has ended",
                          hint="open a new session; the student can ask again")
    return req, session


def _answer_all(db: Session, session: InternetSession, host: str, status: RequestStatus,
                teacher: StaffUser, answer: str | None = None) -> list[SiteRequest]:
    now = utcnow()
    rows = list(db.scalars(select(SiteRequest).where(
        SiteRequest.session_id == session.id, SiteRequest.host == host,
        SiteRequest.kind == RequestKind.LESSON.value,
        SiteRequest.status == RequestStatus.OPEN.value)))
    for row in rows:
        row.status, row.decided_by, row.decided_at = status.value, teacher.username, now
        row.answer = answer
    return rows
