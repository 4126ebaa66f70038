"""Signing in and out, first-run setup, and the signed cookie (the only user of ``flask.session``).

The cookie holds the account id and a fingerprint of its password hash, so that a password
change or a deactivated account ends every sign-in. It expires after
``PERMANENT_SESSION_LIFETIME`` without use and ``SESSION_MAX_AGE`` after sign-in; it is
HttpOnly, SameSite=Lax, and Secure whenever the page is served over HTTPS. Failed sign-ins
are written to the audit log, which is also what throttles them.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from flask_login import LoginManager, current_user, login_user, logout_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin_ui.access import public, signed_in
from admin_ui.audit import recent_failures, record
from admin_ui.db import DISTRICT_HOME, district_sessions, get_db, get_home_db
from admin_ui.models import AuditAction
from admin_ui.staff import (
    MIN_PASSWORD_LENGTH,
    Account,
    create_account,
    needs_setup,
    password_fingerprint,
    verify_password,
)
from policies.categories import LANGUAGES
from policies.errors import KalkanError
from policies.models import Role, StaffUser

bp = Blueprint("auth", __name__)

THROTTLE_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_USER = 5  # then that user name waits out the window
MAX_FAILURES_PER_CLIENT = 20  # one machine trying many names

login_manager = LoginManager()


@login_manager.user_loader
def load_account(cookie_id: str) -> Account | None:
    user_id, _sep, fingerprint = cookie_id.partition(":")
    if not user_id.isdigit():
        return None
    user = get_home_db().get(StaffUser, int(user_id))
    if user is None or not user.active or password_fingerprint(user) != fingerprint:
        return None  # deactivated, or the password changed since this cookie was made
    if current_app.config.get("DISTRICT_URL") and (
            (g.get("home") == DISTRICT_HOME) != (user.role == Role.DISTRICT)):
        return None  # the district role only in the district's accounts, and only it there
    return Account.of(user)


# --- district mode: which school's database a request reads (admin_ui/db.py) ---------------

def choose_school() -> None:
    """``before_request``: the signed-in account's home and the school on screen, from the
    signed cookie. A school's staff have home = school, always; district staff may switch."""
    if current_app.config.get("DISTRICT_URL"):
        g.home = session.get("home")
        g.school = session.get("school")


def view_school(school_id: str) -> None:
    """District staff only (the view checks the role): look at another school."""
    session["school"] = g.school = school_id
    g.pop("db", None)


def district_schools() -> list[Any]:
    from district.schools import list_schools

    with district_sessions(DISTRICT_HOME)() as db:
        return list_schools(db)


class KalkanSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS (a school may
    serve the admin over plain HTTP on its own network, where a Secure cookie would be lost)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        forced = bool(app.config["SESSION_COOKIE_SECURE"])
        return forced or (has_request_context() and request.is_secure)


def home_url() -> str:
    if current_user.is_authenticated and current_user.role == Role.TEACHER:
        return url_for("lessons.index")
    if current_user.is_authenticated:
        return url_for("dashboard.index")  # the council, the responsible person, the director
    return url_for("status.index")


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site: never an open redirect to somewhere else."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return None


def _sign_in(user: StaffUser) -> None:
    session.clear()  # nothing from before sign-in survives it (session fixation)
    login_user(Account.of(user))
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME without use
    session["signed_in_at"] = int(time.time())


def end_stale_sign_in() -> None:
    """``before_request``: a sign-in older than SESSION_MAX_AGE ends, used or not."""
    started = session.get("signed_in_at")
    max_age = current_app.config["SESSION_MAX_AGE"]
    if started is not None and time.time() - started > max_age.total_seconds():
        logout_user()
        session.clear()


@bp.route("/setup", methods=["GET", "POST"])
@public
def setup() -> Response | str:
    """First run: create the responsible person's account (like AdGuard Home's wizard)."""
    db = get_db()
    if not needs_setup(db):
        return redirect(url_for("auth.login"))
    error = None
    form = request.form
    if request.method == "POST":
        password = form.get("password", "")
        if len(password) < MIN_PASSWORD_LENGTH:
            error = _("The password must have at least %(n)d characters.", n=MIN_PASSWORD_LENGTH)
        elif password != form.get("password2", ""):
            error = _("The two passwords differ.")
        else:
            language = form.get("language") if form.get("language") in LANGUAGES else None
            try:
                user = create_account(
                    db, username=form.get("username", ""), full_name=form.get("full_name", ""),
                    role=Role.RESPONSIBLE, password=password, language=language,
                    method=current_app.config["PASSWORD_METHOD"])
            except KalkanError as exc:
                error = str(exc)
            else:
                record(db, AuditAction.SETUP, user.username, actor=user.username,
                       role=user.role)
                db.commit()
                current_app.extensions["kalkan.setup_done"] = True
                _sign_in(user)
                flash(_("Welcome! Your account is ready."))
                return redirect(url_for("accounts.index"))
    return render_template("auth/setup.html", error=error, form=form)


@bp.route("/login", methods=["GET", "POST"])
@public
def login() -> Response | tuple[str, int] | str:
    if current_user.is_authenticated and request.method == "GET":
        return redirect(home_url())
    error = None
    status = 200
    district = bool(current_app.config.get("DISTRICT_URL"))
    schools = district_schools() if district else []
    if request.method == "POST":
        if district:  # the account lives in its school's schema, or in the district's
            home = request.form.get("school") or DISTRICT_HOME
            if home != DISTRICT_HOME and home not in {s.id for s in schools}:
                home = DISTRICT_HOME
            g.home = g.school = home
        db = get_db()
        username = request.form.get("username", "").strip().lower()[:64]
        per_user, per_client = recent_failures(db, username=username,
                                               client=request.remote_addr,
                                               window=THROTTLE_WINDOW)
        user = db.scalar(select(StaffUser).where(StaffUser.username == username))
        if per_user >= MAX_FAILURES_PER_USER or per_client >= MAX_FAILURES_PER_CLIENT:
            # Refused without checking the password, and counted: guessing on keeps it shut.
            error = _("Too many failed sign-ins. Wait %(minutes)d minutes and try again.",
                      minutes=int(THROTTLE_WINDOW.total_seconds() // 60))
            status = 429
            record(db, AuditAction.SIGN_IN_FAILED, username, throttled=True)
            db.commit()
        elif verify_password(user, request.form.get("password", "")) and (
                not district or (g.home == DISTRICT_HOME) == (user.role == Role.DISTRICT)):
            assert user is not None
            record(db, AuditAction.SIGN_IN, username, actor=username, role=user.role)
            db.commit()
            _sign_in(user)
            if district:
                session["home"] = g.home
                session["school"] = g.home if g.home != DISTRICT_HOME else (
                    schools[0].id if schools else DISTRICT_HOME)
            return redirect(_safe_next(request.args.get("next")) or home_url())
        else:
            error = _("Wrong user name or password.")
            status = 401
            record(db, AuditAction.SIGN_IN_FAILED, username)
            db.commit()
    return render_template("auth/login.html", error=error, schools=schools,
                           district=district), status


@bp.post("/logout")
@signed_in
def logout() -> Response:
    db = get_db()
    record(db, AuditAction.SIGN_OUT, current_user.username)
    db.commit()
    logout_user()
    session.clear()
    flash(_("You have signed out."))
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    app.session_interface = KalkanSessionInterface()
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = None  # the sign-in page says enough
    login_manager.session_protection = "strong"  # a cookie moved to another browser is void
    app.before_request(end_stale_sign_in)
    app.before_request(choose_school)
