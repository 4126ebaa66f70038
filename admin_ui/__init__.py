"""The web admin (Flask): the council edits the policy, teachers run sessions from a phone,
the responsible person manages accounts; in five languages, with roles, CSRF and an audit log.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response

log = logging.getLogger(__name__)

csrf = CSRFProtect()

# Content-Security-Policy: no inline script, nothing from another site (the school may be
# offline, and an injected string can then never run).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """App factory. ``test_config`` (or the runner) gives ``DATABASE_URL`` and/or ``SESSIONS``,
    ``ENGINE``, ``DEFAULT_GROUP``; ``SECRET_KEY`` or ``SECRET_KEY_FILE`` signs the cookies;
    ``DISTRICT_URL`` makes it the admin of a whole district (docs/district.md)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        DATABASE_URL="sqlite:///kalkan.db",
        DEFAULT_GROUP="guests",
        SESSION_COOKIE_NAME="kalkan_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,  # Secure is added whenever the request is HTTPS (auth.py)
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=8),  # signed out after 8 h unused
        SESSION_MAX_AGE=dt.timedelta(hours=14),  # and 14 h after signing in, used or not
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the sign-in: a lesson page stays open
        PASSWORD_METHOD="scrypt",
        MAX_CONTENT_LENGTH=4 << 20,
        BABEL_DEFAULT_LOCALE="en",
    )
    if test_config is not None:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key(app.config.get("SECRET_KEY_FILE"))

    from admin_ui import (
        access,
        access_log,
        accounts,
        alerts_page,
        api,
        audit,
        auth,
        blocklist_sources,
        classes,
        council,
        dashboard,
        db,
        devices,
        district,
        languages,
        lessons,
        notification_settings,
        operations,
        page_formats,
        review_queue,
        rooms,
        status,
        students,
        timetable,
    )

    db.init_app(app)
    csrf.init_app(app)
    auth.init_app(app)  # before access: a stale sign-in ends before the roles are checked
    access.init_app(app)
    languages.init_app(app)
    page_formats.init_app(app)  # after Babel's: replaces its per-call lookups
    district.init_app(app)
    for area in (auth, status, dashboard, access_log, alerts_page, council, devices, lessons,
                 accounts, audit, languages, api, rooms, classes, students, timetable,
                 review_queue, blocklist_sources, notification_settings, district, operations):
        app.register_blueprint(area.bp)
    csrf.exempt(api.bp)  # token-authenticated only (access.enforce): no cookie, no CSRF

    app.after_request(_security_headers)
    app.register_error_handler(CSRFError, _csrf_refused)
    for code in (401, 403, 404, 405, 413):
        app.register_error_handler(code, _error_page)
    return app


def load_secret_key(path: str | os.PathLike[str] | None) -> str:
    """The key in ``path``, made (private to this user) when missing; without a path a random
    key for this process only, which signs everyone out at the next start."""
    if path is None:
        log.warning("no SECRET_KEY_FILE: sign-ins last until the admin restarts")
        return secrets.token_hex(32)
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return file.read_text().strip()


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if response.mimetype == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")  # pages hold personal data
    return response


def _csrf_refused(_exc: CSRFError) -> tuple[str, int]:
    return render_template("error.html", code=400, message=_(
        "The form had expired or did not come from this site. Open the page again and repeat "
        "what you did.")), 400


def _error_page(exc: Any) -> tuple[str, int]:
    code = getattr(exc, "code", 500) or 500
    messages = {
        401: _("Your role does not give access to this page."),
        403: _("Your role does not give access to this page."),
        404: _("There is no such page."),
        405: _("This page cannot be used that way."),
        413: _("What you sent is too large."),
    }
    if request.path.startswith("/api/"):
        return jsonify(error=_API_ERRORS.get(code, "error")), code
    return render_template("error.html", code=code, message=messages.get(code, "")), code


_API_ERRORS = {
    401: "a valid API token is needed: Authorization: Bearer kalkan_…",
    403: "the token's account has no role that may do this",
    404: "no such resource",
    405: "method not allowed",
    413: "request too large",
}
