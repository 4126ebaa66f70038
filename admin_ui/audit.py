"""The audit log: every change made through the admin, and every sign-in attempt."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, g, render_template, request
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from admin_ui.access import roles
from admin_ui.db import get_db
from admin_ui.models import AuditAction, AuditEntry
from policies.database import utcnow
from policies.models import Role

bp = Blueprint("audit", __name__, url_prefix="/audit")

PAGE_SIZE = 200


def record(db: Session, action: AuditAction, target: str = "", *, actor: str | None = None,
           role: str | None = None, **detail: Any) -> AuditEntry:
    """Add an entry for the signed-in user (or ``actor``); the caller commits."""
    if actor is None and current_user and current_user.is_authenticated:
        actor, role = current_user.username, current_user.role
    if "api_token" in g:
        detail["api_token"] = g.api_token  # which key did it, of the account's keys
    entry = AuditEntry(created_at=utcnow(), actor=actor, role=role, client=request.remote_addr,
                       action=action.value, target=target[:253], detail=detail)
    db.add(entry)
    return entry


def recent_failures(db: Session, *, username: str, client: str | None,
                    window: dt.timedelta) -> tuple[int, int]:
    """Failed sign-ins within ``window``: (for this user name, from this client)."""
    since = utcnow() - window
    base = select(AuditEntry.target, AuditEntry.client).where(
        AuditEntry.action == AuditAction.SIGN_IN_FAILED.value, AuditEntry.created_at >= since,
        or_(AuditEntry.target == username, AuditEntry.client == client))
    rows = db.execute(base).all()
    return (sum(1 for r in rows if r.target == username),
            sum(1 for r in rows if r.client == client))


@bp.get("/")
@roles(Role.RESPONSIBLE, Role.DIRECTOR)
def index() -> str:
    db = get_db()
    action = request.args.get("action", "")
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(PAGE_SIZE)
    if action in {a.value for a in AuditAction}:
        query = query.where(AuditEntry.action == action)
    total = db.scalar(select(func.count(AuditEntry.id)))
    return render_template("audit/index.html", entries=db.scalars(query).all(), total=total,
                           actions=list(AuditAction), action=action)
