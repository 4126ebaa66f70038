"""Who may open which page: every view declares its rule, and one hook enforces them all.

A view without a rule is refused to everyone (fail closed); ``tests/admin_ui/test_access.py``
walks the URL map and checks that every endpoint has the rule it should.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from admin_ui.db import get_db
from admin_ui.staff import Account, needs_setup, token_user
from policies.models import Role

View = TypeVar("View", bound=Callable[..., Any])

PUBLIC = "public"
API_PREFIX = "api."  # endpoints of the JSON API: an API token, never a cookie
ATTRIBUTE = "kalkan_access"
# What a visitor may reach before the first account exists (monitoring too: it must answer
# without the database, which may be on a full disk).
BEFORE_SETUP = frozenset({"auth.setup", "static", "status.healthz", "languages.choose",
                          "operations.metrics", "operations.healthz_service"})
EDITORS = (Role.COUNCIL, Role.RESPONSIBLE)  # may change the policy, with a council decision
# The director reads, never writes; so do district staff, in every school of the district.
READERS = (Role.COUNCIL, Role.RESPONSIBLE, Role.DIRECTOR, Role.DISTRICT)
SUPERVISORS = (Role.TEACHER, Role.COUNCIL, Role.RESPONSIBLE)  # may open internet sessions


def public(view: View) -> View:
    """Anyone may open it, signed in or not."""
    setattr(view, ATTRIBUTE, PUBLIC)
    return view


def roles(*allowed: Role) -> Callable[[View], View]:
    """Only signed-in staff with one of ``allowed`` roles may open it."""

    def mark(view: View) -> View:
        setattr(view, ATTRIBUTE, frozenset(allowed))
        return view

    return mark


def signed_in(view: View) -> View:
    """Every signed-in role may open it."""
    return roles(*Role)(view)


def rule_of(app: Flask, endpoint: str) -> str | frozenset[Role] | None:
    if endpoint == "static":
        return PUBLIC
    return getattr(app.view_functions.get(endpoint), ATTRIBUTE, None)


def enforce() -> Response | None:
    """``before_request``: first-run setup, then sign-in, then the view's roles."""
    endpoint = request.endpoint
    if endpoint is None:
        return None  # 404 or 405: nothing to protect
    if endpoint not in BEFORE_SETUP and _needs_setup():
        return redirect(url_for("auth.setup"))
    rule = rule_of(current_app, endpoint)
    if rule is None:
        abort(403)  # a view nobody gave a rule: refused until someone does
    if rule == PUBLIC:
        return None
    if endpoint.startswith(API_PREFIX):
        # The API takes its key and nothing else: a browser's cookie never reaches it, so a
        # page elsewhere cannot make a signed-in browser call it (no CSRF token is asked).
        found = token_user(get_db(), request.headers.get("Authorization", ""))
        if found is None:
            abort(401)
        user, token = found
        g._login_user = Account.of(user)  # Flask-Login's current_user, for this request only
        g.api_token = token.name
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    if Role(current_user.role) not in rule:
        abort(403)
    return None


def may(endpoint: str) -> bool:
    """For templates: show a link only to those who may follow it."""
    rule = rule_of(current_app, endpoint)
    if rule == PUBLIC:
        return True
    return bool(rule) and current_user.is_authenticated and Role(current_user.role) in rule


def _needs_setup() -> bool:
    if current_app.config.get("DISTRICT_URL"):
        return False  # district accounts come from `kalkan district add-staff`
    if current_app.extensions.get("kalkan.setup_done"):
        return False
    if needs_setup(get_db()):
        return True
    current_app.extensions["kalkan.setup_done"] = True  # accounts are never all deleted
    return False


def init_app(app: Flask) -> None:
    app.before_request(enforce)
    app.jinja_env.globals["may"] = may
