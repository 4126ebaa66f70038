"""The review and report queue (regulations 2.12, 3.4): what students sent from the block page.

"This site is blocked by mistake" (a review) and "this harmful page got through" (a report)
wait here for the council or the responsible person, who either dismiss one with a reason, or
turn it into a site-list change — allow the site for a group, or block it for everyone — that
is saved with the council decision as a new revision, through the same path as the council
pages. Every open request about the same site is answered with it, and audit-logged.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from admin_ui.access import EDITORS, READERS, roles
from admin_ui.audit import record
from admin_ui.db import get_db
from admin_ui.decided_save import save_decided
from admin_ui.models import AuditAction
from admin_ui.policy_changes import group_of
from policies.database import utcnow
from policies.errors import KalkanError
from policies.models import Group, RequestKind, RequestStatus, SiteRequest
from policies.revisions import export_data, latest_revision

bp = Blueprint("review_queue", __name__, url_prefix="/queue")

QUEUE_KINDS = (RequestKind.REVIEW.value, RequestKind.REPORT.value)  # lesson ones: the teacher's
PAGE_SIZE = 200


def allow_for_group(data: dict[str, Any], host: str, group_id: str) -> dict[str, Any]:
    """``host`` on the group's allow list (and off its block list)."""
    new = copy.deepcopy(data)
    sites = group_of(new, group_id)["sites"]
    if host in sites["block"]:
        sites["block"].remove(host)
    if host not in sites["allow"]:
        sites["allow"].append(host)
    return new


def block_for_everyone(data: dict[str, Any], host: str) -> dict[str, Any]:
    """``host`` on the list of every group's blocked sites (and off the shared allow list)."""
    new = copy.deepcopy(data)
    sites = new["sites"]
    if host in sites["allow"]:
        sites["allow"].remove(host)
    if host not in sites["block"]:
        sites["block"].append(host)
    return new


def answer_all(db: Session, host: str, status: RequestStatus, answer: str) -> list[SiteRequest]:
    """Answer every open review or report about ``host``; the caller commits."""
    rows = list(db.scalars(select(SiteRequest).where(
        SiteRequest.host == host, SiteRequest.kind.in_(QUEUE_KINDS),
        SiteRequest.status == RequestStatus.OPEN.value)))
    now = utcnow()
    for row in rows:
        row.status, row.decided_by, row.decided_at = status.value, current_user.username, now
        row.answer = answer[:2000]
    return rows


def open_count(db: Session) -> int:
    return db.scalar(select(func.count(SiteRequest.id)).where(
        SiteRequest.kind.in_(QUEUE_KINDS), SiteRequest.status == RequestStatus.OPEN.value)) or 0


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    db = get_db()
    show = request.args.get("show", "open")
    query = select(SiteRequest).where(SiteRequest.kind.in_(QUEUE_KINDS)).order_by(
        SiteRequest.id.desc()).limit(PAGE_SIZE)
    if show != "all":
        query = query.where(SiteRequest.status == RequestStatus.OPEN.value)
    groups = db.execute(select(Group.id, Group.name).order_by(Group.position)).all()
    latest = latest_revision(db)
    return render_template("people/queue.html", requests=db.scalars(query).all(), show=show,
                           groups=groups, open_count=open_count(db),
                           base_revision=latest.id if latest else "", form=request.form,
                           **extra), status


@bp.get("/")
@roles(*READERS)
def index() -> tuple[str, int]:
    return _page()


@bp.post("/<int:request_id>")
@roles(*EDITORS)
def resolve(request_id: int) -> Response | tuple[str, int]:
    """``outcome``: ``dismiss`` (with a reason), ``allow`` (for ``group``) or ``block``."""
    db = get_db()
    req = db.get(SiteRequest, request_id)
    if req is None or req.kind not in QUEUE_KINDS:
        abort(404)
    if req.status != RequestStatus.OPEN:
        flash(_("This request has already been answered."), "error")
        return redirect(url_for("review_queue.index"))
    form = request.form
    outcome = form.get("outcome", "")
    host = req.host
    try:
        if outcome == "dismiss":
            reason = form.get("answer", "").strip()
            if not reason:
                raise KalkanError(_("Write why the request is dismissed."))
            answered = answer_all(db, host, RequestStatus.REFUSED, reason)
            record(db, AuditAction.REQUEST_DISMISSED, host, requests=[r.id for r in answered],
                   reason=reason[:500])
            db.commit()
            flash(_("Dismissed: %(host)s.", host=host))
        elif outcome in ("allow", "block"):
            data = export_data(db)
            if outcome == "allow":
                group_id = form.get("group", "")
                if group_id not in {g["id"] for g in data["groups"]}:
                    raise KalkanError(_("Choose the group the site is allowed for."))
                new = allow_for_group(data, host, group_id)
                what = f"allow {host} for group {group_id} (request {request_id})"
            else:
                new = block_for_everyone(data, host)
                what = f"block {host} for everyone (request {request_id})"
            result = save_decided(db, new, what=what)
            revision = result.revision.id if result else None
            answer = (form.get("answer", "").strip() or what) + (
                f" — revision {revision}" if revision else "")
            answered = answer_all(db, host, RequestStatus.RESOLVED, answer)
            record(db, AuditAction.REQUEST_RESOLVED, host, requests=[r.id for r in answered],
                   outcome=outcome, revision=revision)
            db.commit()
        else:
            raise KalkanError(_("Choose what to do with the request."))
    except KalkanError as exc:
        db.rollback()
        return _page(400, error=str(exc), failed=request_id)
    return redirect(url_for("review_queue.index"))
