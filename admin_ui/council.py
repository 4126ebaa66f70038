"""The methodical council's pages (regulations 2.6, 2.13): the policy, its history, import/export.

Every save asks for the council decision it implements (protocol number and date) and becomes
a revision through :mod:`admin_ui.policy_changes`; nothing here writes policy rows itself.
The director may read every page (read-only role); the council and the responsible person may
also save.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import Session

from admin_ui.access import EDITORS, READERS, roles
from admin_ui.audit import record
from admin_ui.db import get_db
from admin_ui.models import AuditAction
from admin_ui.policy_changes import (
    CELL_VALUES,
    cell,
    describe_changes,
    group_of,
    is_locked,
    parse_schedule_lines,
    parse_site_lines,
    save_policy,
    schedule_lines,
    set_category_actions,
    set_group_settings,
    set_schedule,
    set_site_lists,
)
from policies.decision import CouncilDecision
from policies.errors import KalkanError
from policies.models import GroupMode, YoutubeRestriction
from policies.revisions import (
    ImportResult,
    export_data,
    export_policy,
    get_revision,
    history,
    import_policy,
    latest_revision,
    rollback,
)

bp = Blueprint("council", __name__, url_prefix="/council")

MAX_UPLOAD = 2 << 20  # a policy document is a few hundred kilobytes at most


def _decision() -> tuple[CouncilDecision, str]:
    form = request.form
    return (CouncilDecision(form.get("protocol", "").strip(), form.get("decision_date", "")),
            form.get("comment", "").strip())


def _base_revision() -> int | None:
    text = request.form.get("base_revision", "")
    return int(text) if text.isdigit() else None


def _saved(db: Session, result: ImportResult | None, action: AuditAction, target: str) -> None:
    if result is None:
        flash(_("Nothing changed, so no revision was made."))
        return
    rev = result.revision
    record(db, action, f"revision {rev.id}", protocol=rev.protocol,
           decision_date=rev.decision_date.isoformat(), what=target)
    db.commit()
    flash(_("Saved as revision %(n)d (council protocol No %(protocol)s of %(date)s).",
            n=rev.id, protocol=rev.protocol, date=rev.decision_date.isoformat()))


def _context(data: dict[str, Any]) -> dict[str, Any]:
    latest = latest_revision(get_db())
    return {"data": data, "revision": latest, "base_revision": latest.id if latest else "",
            "cell": cell, "is_locked": is_locked, "form": request.form}


# --- groups × categories ----------------------------------------------------------------------

@bp.get("/")
@roles(*READERS)
def matrix() -> str:
    return render_template("council/matrix.html", **_context(export_data(get_db())))


@bp.post("/")
@roles(*EDITORS)
def save_matrix() -> Response | tuple[str, int]:
    db = get_db()
    data = export_data(db)
    cells = {}
    for key, value in request.form.items():
        if key.startswith("cell|"):
            _prefix, gid, cid = key.split("|", 2)
            cells[(gid, cid)] = value if value in CELL_VALUES else "?"
    try:
        new = set_category_actions(data, cells)
    except KalkanError as exc:
        return _refused(data, "council/matrix.html", exc)
    return _save(new, AuditAction.POLICY_SAVED, "categories", "council/matrix.html",
                 url_for("council.matrix"))


def _save(new: dict[str, Any], action: AuditAction, what: str, template: str, back: str,
          **extra: Any) -> Response | tuple[str, int]:
    db = get_db()
    decision, comment = _decision()
    if not decision.protocol or not decision.date:
        return _refused(new, template, KalkanError(
            _("Give the council decision: its protocol number and date.")), **extra)
    try:
        result = save_policy(db, new, decision=decision, author=current_user.username,
                             comment=comment, base_revision=_base_revision())
    except KalkanError as exc:
        return _refused(new, template, exc, **extra)
    _saved(db, result, action, what)
    return redirect(back)


def _refused(data: dict[str, Any], template: str, exc: KalkanError,
             **extra: Any) -> tuple[str, int]:
    """Show the page again with the edits kept and the reason it was not saved."""
    get_db().rollback()
    return render_template(template, error=str(exc), **_context(data), **extra), 400


# --- one group: settings, site lists, schedule -------------------------------------------------

@bp.get("/groups/<group_id>")
@roles(*READERS)
def group(group_id: str) -> str:
    data = export_data(get_db())
    return render_template("council/group.html", group=_group_or_404(data, group_id),
                           **_group_extra(), **_context(data))


def _group_extra() -> dict[str, Any]:
    return {"modes": list(GroupMode), "youtube_levels": list(YoutubeRestriction),
            "schedule_lines": schedule_lines}


def _group_or_404(data: dict[str, Any], group_id: str) -> dict[str, Any]:
    try:
        return group_of(data, group_id)
    except KalkanError:
        abort(404)


@bp.post("/groups/<group_id>")
@roles(*EDITORS)
def save_group(group_id: str) -> Response | tuple[str, int]:
    data = export_data(get_db())
    _group_or_404(data, group_id)
    form = request.form
    try:
        new = set_group_settings(
            data, group_id, mode=form.get("mode", ""), youtube=form.get("youtube", ""),
            safe_search="safe_search" in form, downloads="downloads" in form,
            session_required="session_required" in form)
        new = set_site_lists(new, group_id, allow=parse_site_lines(form.get("allow", "")),
                             block=parse_site_lines(form.get("block", "")))
        new = set_schedule(new, group_id, parse_schedule_lines(form.get("schedule", "")))
    except (KalkanError, ValueError) as exc:
        error = exc if isinstance(exc, KalkanError) else KalkanError(str(exc))
        return _refused(data, "council/group.html", error, group=group_of(data, group_id),
                        **_group_extra())
    return _save(new, AuditAction.POLICY_SAVED, f"group {group_id}", "council/group.html",
                 url_for("council.group", group_id=group_id), group=group_of(new, group_id),
                 **_group_extra())


@bp.get("/sites")
@roles(*READERS)
def sites() -> str:
    return render_template("council/sites.html", **_context(export_data(get_db())))


@bp.post("/sites")
@roles(*EDITORS)
def save_sites() -> Response | tuple[str, int]:
    data = export_data(get_db())
    new = set_site_lists(data, None, allow=parse_site_lines(request.form.get("allow", "")),
                         block=parse_site_lines(request.form.get("block", "")))
    return _save(new, AuditAction.POLICY_SAVED, "sites of every group", "council/sites.html",
                 url_for("council.sites"))


# --- history, rollback, import and export -----------------------------------------------------

@bp.get("/history")
@roles(*READERS)
def revisions() -> str:
    return render_template("council/history.html", revisions=history(get_db()))


@bp.get("/history/<int:number>")
@roles(*READERS)
def revision(number: int) -> str:
    db = get_db()
    try:
        rev = get_revision(db, number)
    except KalkanError:
        abort(404)
    previous = db.get(type(rev), number - 1)
    changes = describe_changes(previous.document if previous else "", rev.document)
    latest = latest_revision(db)
    return render_template("council/revision.html", rev=rev, changes=changes,
                           latest=latest, form=request.form)


@bp.post("/history/<int:number>/rollback")
@roles(*EDITORS)
def rollback_to(number: int) -> Response:
    db = get_db()
    decision, comment = _decision()
    if not decision.protocol or not decision.date:
        flash(_("Give the council decision: its protocol number and date."), "error")
        return redirect(url_for("council.revision", number=number))
    try:
        get_revision(db, number)
        result = rollback(db, number, decision=decision, author=current_user.username,
                          comment=comment)
    except KalkanError as exc:
        db.rollback()
        flash(_("Not rolled back: %(error)s", error=str(exc)), "error")
        return redirect(url_for("council.revision", number=number))
    _saved(db, result, AuditAction.POLICY_ROLLED_BACK, f"rollback to revision {number}")
    return redirect(url_for("council.revisions"))


@bp.get("/export")
@roles(*READERS)
def export() -> Response:
    db = get_db()
    latest = latest_revision(db)
    name = f"kalkan-policy-r{latest.id}.yaml" if latest else "kalkan-policy.yaml"
    return Response(export_policy(db), mimetype="application/yaml",
                    headers={"Content-Disposition": f"attachment; filename={name}"})


@bp.get("/import")
@roles(*EDITORS)
def import_form() -> str:
    return render_template("council/import.html", form=request.form)


@bp.post("/import")
@roles(*EDITORS)
def save_import() -> Response | tuple[str, int]:
    db = get_db()
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        raw = upload.read(MAX_UPLOAD + 1)
        name = upload.filename
    else:
        raw = request.form.get("text", "").encode()
        name = "pasted text"
    error = None
    if len(raw) > MAX_UPLOAD:
        error = _("The file is larger than %(mb)d MB.", mb=MAX_UPLOAD >> 20)
    elif not (request.form.get("protocol", "").strip() and request.form.get("decision_date")):
        error = _("Give the council decision: its protocol number and date.")
    else:
        decision, comment = _decision()
        try:
            text = raw.decode("utf-8")
            result = import_policy(db, text, file=name, decision=decision,
                                   author=current_user.username,
                                   comment=comment or f"imported from {name}")
        except UnicodeDecodeError:
            error = _("The file is not UTF-8 text.")
        except KalkanError as exc:
            db.rollback()
            error = str(exc)
        else:
            _saved(db, result, AuditAction.POLICY_IMPORTED, name)
            return redirect(url_for("council.revisions"))
    return render_template("council/import.html", error=error, form=request.form), 400
