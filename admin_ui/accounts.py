"""Staff accounts: the responsible person adds and changes them; everyone has their own page.

Roles: council member, responsible person, teacher, director (read-only). A teacher's classes
(besides the one they are class teacher of) are set here too: a teacher sees only those.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin_ui.access import roles, signed_in
from admin_ui.audit import record
from admin_ui.db import get_db
from admin_ui.models import ApiToken, AuditAction
from admin_ui.staff import (
    MIN_PASSWORD_LENGTH,
    create_account,
    create_api_token,
    hash_password,
    set_teacher_classes,
    teacher_class_ids,
    verify_password,
)
from policies.categories import LANGUAGES
from policies.database import utcnow
from policies.errors import KalkanError
from policies.models import Role, SchoolClass, StaffUser

bp = Blueprint("accounts", __name__, url_prefix="/accounts")


def _role(text: str) -> Role | None:
    return Role(text) if text in {r.value for r in Role} else None


def _language(text: str | None) -> str | None:
    return text if text in LANGUAGES else None


@bp.get("/")
@roles(Role.RESPONSIBLE)
def index() -> str:
    db = get_db()
    users = db.scalars(select(StaffUser).order_by(StaffUser.role, StaffUser.username)).all()
    return render_template("accounts/index.html", users=users, roles=list(Role),
                           form=request.form)


@bp.post("/")
@roles(Role.RESPONSIBLE)
def create() -> Response | tuple[str, int]:
    db = get_db()
    form = request.form
    role = _role(form.get("role", ""))
    error = None
    if role is None:
        error = _("Choose a role.")
    else:
        try:
            user = create_account(db, username=form.get("username", ""),
                                  full_name=form.get("full_name", ""), role=role,
                                  password=form.get("password", ""),
                                  language=_language(form.get("language")),
                                  method=current_app.config["PASSWORD_METHOD"])
        except KalkanError as exc:
            db.rollback()
            error = str(exc)
        else:
            record(db, AuditAction.ACCOUNT_CREATED, user.username, role_given=user.role)
            db.commit()
            flash(_("Account %(name)s created.", name=user.username))
            return redirect(url_for("accounts.edit", user_id=user.id))
    users = db.scalars(select(StaffUser).order_by(StaffUser.role, StaffUser.username)).all()
    return render_template("accounts/index.html", users=users, roles=list(Role), form=form,
                           error=error), 400


def _user_or_404(user_id: int) -> StaffUser:
    user = get_db().get(StaffUser, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/<int:user_id>")
@roles(Role.RESPONSIBLE)
def edit(user_id: int, new_key: str | None = None) -> str:
    db = get_db()
    user = _user_or_404(user_id)
    tokens = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                        .order_by(ApiToken.id)).all()
    return render_template("accounts/edit.html", user=user, roles=list(Role),
                           classes=db.scalars(select(SchoolClass).order_by(
                               SchoolClass.grade, SchoolClass.id)).all(),
                           taught=set(teacher_class_ids(db, user)), tokens=tokens,
                           new_key=new_key)


@bp.post("/<int:user_id>/tokens")
@roles(Role.RESPONSIBLE)
def create_token(user_id: int) -> str | Response:
    """A new API key for this account, shown once on the page that answers (never stored)."""
    db = get_db()
    user = _user_or_404(user_id)
    try:
        token, key = create_api_token(db, user, request.form.get("name", ""))
    except KalkanError as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(url_for("accounts.edit", user_id=user.id))
    record(db, AuditAction.TOKEN_CREATED, user.username, token=token.name)
    db.commit()
    return edit(user.id, new_key=key)


@bp.post("/<int:user_id>/tokens/<int:token_id>/revoke")
@roles(Role.RESPONSIBLE)
def revoke_token(user_id: int, token_id: int) -> Response:
    db = get_db()
    token = db.get(ApiToken, token_id)
    if token is None or token.user_id != user_id:
        abort(404)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record(db, AuditAction.TOKEN_REVOKED, _user_or_404(user_id).username, token=token.name)
        db.commit()
    flash(_("The key is revoked."))
    return redirect(url_for("accounts.edit", user_id=user_id))


@bp.post("/<int:user_id>")
@roles(Role.RESPONSIBLE)
def save(user_id: int) -> Response:
    db = get_db()
    user = _user_or_404(user_id)
    form = request.form
    changes: dict[str, object] = {}
    role = _role(form.get("role", ""))
    if user.id == current_user.id and (role != Role.RESPONSIBLE or "active" not in form):
        flash(_("You cannot take away your own access."), "error")
        return redirect(url_for("accounts.edit", user_id=user.id))
    if role is not None and role != user.role:
        changes["role"] = [user.role, role.value]
        user.role = role.value
    if form.get("full_name", "").strip() and form["full_name"].strip() != user.full_name:
        changes["full_name"] = form["full_name"].strip()
        user.full_name = form["full_name"].strip()
    language = _language(form.get("language"))
    if language != user.language:
        changes["language"] = language
        user.language = language
    active = "active" in form
    if active != user.active:
        changes["active"] = active
        user.active = active
    try:
        if form.get("password"):
            user.password_hash = hash_password(form["password"],
                                               current_app.config["PASSWORD_METHOD"])
            changes["password"] = "reset"
        own = {c.id for c in db.scalars(select(SchoolClass).where(
            SchoolClass.class_teacher_id == user.id))}
        wanted = [c for c in form.getlist("classes") if c not in own]
        if set(wanted) | own != set(teacher_class_ids(db, user)):
            set_teacher_classes(db, user, wanted)
            changes["classes"] = sorted(set(wanted) | own)
    except KalkanError as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(url_for("accounts.edit", user_id=user.id))
    if changes:
        record(db, AuditAction.ACCOUNT_CHANGED, user.username, **changes)
    db.commit()
    flash(_("Saved."))
    return redirect(url_for("accounts.edit", user_id=user.id))


@bp.route("/me", methods=["GET", "POST"])
@signed_in
def me() -> Response | str | tuple[str, int]:
    """Everyone's own page: language and password."""
    db = get_db()
    user = _user_or_404(current_user.id)
    error = None
    if request.method == "POST":
        form = request.form
        language = _language(form.get("language"))
        if language != user.language:
            user.language = language
        if form.get("new_password"):
            if not verify_password(user, form.get("password", "")):
                error = _("The current password is wrong.")
            elif len(form["new_password"]) < MIN_PASSWORD_LENGTH:
                error = _("The password must have at least %(n)d characters.",
                          n=MIN_PASSWORD_LENGTH)
            elif form["new_password"] != form.get("new_password2"):
                error = _("The two passwords differ.")
            else:
                user.password_hash = hash_password(form["new_password"],
                                                   current_app.config["PASSWORD_METHOD"])
                record(db, AuditAction.PASSWORD_CHANGED, user.username)
        if error is None:
            db.commit()
            flash(_("Saved."))
            if user.password_hash and "new_password" in form and form["new_password"]:
                # The cookie's fingerprint is now stale: sign in again with the new password.
                return redirect(url_for("auth.login"))
            return redirect(url_for("accounts.me"))
        db.rollback()
        return render_template("accounts/me.html", user=user, error=error), 400
    return render_template("accounts/me.html", user=user, error=error)
