"""Blocklist sources (regulation 2.11): which public lists feed the category index, adding,
turning on and off, removing them, and "update now" with live progress.

The rows and the update are :mod:`blocklists.sources` and :mod:`blocklists.update`, the same as
``kalkan blocklists``; the update runs in a background thread (:mod:`admin_ui.blocklist_updates`)
and the page polls ``/blocklists/progress`` for its state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin_ui.access import READERS, roles
from admin_ui.audit import record
from admin_ui.blocklist_updates import UpdateRunner
from admin_ui.db import get_db, get_sessions
from admin_ui.models import AuditAction
from blocklists.errors import BlocklistError
from blocklists.importers import FORMATS, SINGLE_CATEGORY_FORMATS
from blocklists.sources import add_source, get_source, list_sources, remove_source, set_enabled
from policies.models import Category, Role

bp = Blueprint("blocklist_sources", __name__, url_prefix="/blocklists")


def runner() -> UpdateRunner:
    found = current_app.extensions.get("kalkan.blocklist_update")
    if found is None:
        found = current_app.extensions["kalkan.blocklist_update"] = UpdateRunner()
    return found


def data_dir() -> Path | None:
    value = current_app.config.get("DATA_DIR")
    return Path(value) if value else None


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    db = get_db()
    job = runner().current(data_dir())
    return render_template(
        "people/blocklists.html", sources=list_sources(db), formats=FORMATS,
        single=SINGLE_CATEGORY_FORMATS, job=job,
        categories=db.scalars(select(Category.id).order_by(Category.position)).all(),
        has_data_dir=data_dir() is not None, form=request.form, **extra), status


@bp.get("/")
@roles(*READERS)
def index() -> tuple[str, int]:
    return _page()


@bp.get("/progress")
@roles(*READERS)
def progress() -> Response:
    job = runner().current(data_dir())
    return jsonify(job or {"running": False, "phase": "", "count": 0})


@bp.post("/")
@roles(Role.RESPONSIBLE)
def add() -> Response | tuple[str, int]:
    db = get_db()
    form = request.form
    fmt = form.get("format", "")
    try:
        source = add_source(db, form.get("name", "").strip(), form.get("location", "").strip(),
                            fmt, category=(form.get("category") or None)
                            if fmt in SINGLE_CATEGORY_FORMATS else None)
    except BlocklistError as exc:
        db.rollback()
        return _page(400, error=str(exc))
    record(db, AuditAction.BLOCKLIST_SOURCE_ADDED, source.name, location=source.location,
           format=source.format, category=source.category)
    db.commit()
    flash(_("Source %(name)s added. Update now to use it.", name=source.name))
    return redirect(url_for("blocklist_sources.index"))


@bp.post("/<name>")
@roles(Role.RESPONSIBLE)
def change(name: str) -> Response | tuple[str, int]:
    """``action``: ``enable``, ``disable`` or ``remove``."""
    db = get_db()
    action = request.form.get("action", "")
    try:
        get_source(db, name)
        if action in ("enable", "disable"):
            set_enabled(db, name, action == "enable")
            record(db, AuditAction.BLOCKLIST_SOURCE_CHANGED, name, enabled=action == "enable")
        elif action == "remove":
            remove_source(db, name)
            record(db, AuditAction.BLOCKLIST_SOURCE_REMOVED, name)
        else:
            return _page(400, error=_("Choose what to do with the source."))
    except BlocklistError as exc:
        db.rollback()
        return _page(404, error=str(exc))
    db.commit()
    flash(_("Source %(name)s changed; the index changes with the next update.", name=name))
    return redirect(url_for("blocklist_sources.index"))


@bp.post("/update")
@roles(Role.RESPONSIBLE)
def update_now() -> Response | tuple[str, int]:
    db = get_db()
    directory = data_dir()
    if directory is None:
        return _page(400, error=_("This admin does not know the gateway's data directory: "
                                  "run it with `kalkan run` or `kalkan admin`."))
    job = runner().start(get_sessions(), directory,
                         timeout=current_app.config.get("BLOCKLIST_TIMEOUT", 120.0))
    if job is None:
        flash(_("An update is already running."), "error")
    else:
        record(db, AuditAction.BLOCKLIST_UPDATE_STARTED, "all sources")
        db.commit()
    return redirect(url_for("blocklist_sources.index"))
