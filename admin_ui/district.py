"""District mode: district staff choose which school's pages they see (every view then reads
that school's schema); a school's staff never leave their own. See docs/district.md."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from werkzeug.wrappers import Response

from admin_ui.access import roles
from admin_ui.audit import record
from admin_ui.auth import district_schools, view_school
from admin_ui.db import get_db
from admin_ui.models import AuditAction
from policies.models import Role

bp = Blueprint("district", __name__, url_prefix="/district")


@bp.post("/school")
@roles(Role.DISTRICT)
def choose() -> Response:
    if not current_app.config.get("DISTRICT_URL"):
        abort(404)
    school_id = request.form.get("school", "")
    schools = {s.id: s for s in district_schools()}
    if school_id not in schools:
        flash(_("There is no such school in the district."))
        return redirect(url_for("status.index"))
    view_school(school_id)
    db = get_db()  # the chosen school's: its audit log says who from the district looked
    record(db, AuditAction.SCHOOL_VIEWED, school_id)
    db.commit()
    flash(_("Now showing %(school)s.", school=schools[school_id].name))
    return redirect(url_for("status.index"))


def school_picker() -> dict[str, object]:
    """Template context: the schools for district staff's picker (nothing elsewhere)."""
    if not current_app.config.get("DISTRICT_URL") or not current_user.is_authenticated or (
            current_user.role != Role.DISTRICT):
        return {"district_schools": [], "viewed_school": None}
    return {"district_schools": district_schools(), "viewed_school": g.get("school")}


def init_app(app: Flask) -> None:
    app.context_processor(school_picker)
