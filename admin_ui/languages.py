"""The five languages: which one a page speaks, the switch, and the compiled catalogs.

The ``.po`` catalogs in ``admin_ui/translations`` are the source; the ``.mo`` files Flask-Babel
reads are compiled from them when missing or older (at the first start of a clean clone), next
to them if the package directory is writable, else in a private temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Blueprint, Flask, current_app, redirect, request
from flask_babel import Babel, get_locale
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin_ui.access import public
from admin_ui.db import get_db
from policies.categories import LANGUAGES
from policies.models import Role, School, StaffUser

bp = Blueprint("languages", __name__)

CATALOGS = Path(__file__).with_name("translations")
COOKIE = "kalkan_lang"
# Each language by its own name, as a switch shows them.
AUTONYMS = {"ky": "Кыргызча", "ru": "Русский", "kk": "Қазақша", "uz": "Oʻzbekcha",
            "en": "English"}

babel = Babel()


def pick_locale() -> str:
    """``?lang=`` (one page), the user's choice, the browser's cookie, its Accept-Language,
    then the school's default language."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return asked
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    cookie = request.cookies.get(COOKIE)
    if cookie in LANGUAGES:
        return cookie
    browser = request.accept_languages.best_match(LANGUAGES)
    if browser:
        return browser
    return school_language()


def school_language() -> str:
    school = get_db().scalar(select(School).limit(1))
    return school.language if school and school.language in LANGUAGES else "ky"


def school_timezone() -> str:
    school = get_db().scalar(select(School).limit(1))
    return school.timezone if school else "UTC"


@bp.post("/language")
@public
def choose() -> Response:
    """Remember the language: on the account when signed in, in a cookie for the browser."""
    lang = request.form.get("lang", "")
    target = request.form.get("next", "")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    response = redirect(target)
    if lang in LANGUAGES:
        response.set_cookie(COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="Lax",
                            secure=request.is_secure)
        if current_user.is_authenticated:
            db = get_db()
            user = db.get(StaffUser, current_user.id)
            if user is not None:
                user.language = lang
                db.commit()
    return response


def compile_catalogs(source: Path = CATALOGS) -> Path:
    """Compile every ``.po`` whose ``.mo`` is missing or older; return the directory to read."""
    try:
        _compile_into(source, source)
        return source
    except OSError:  # an installed, read-only package: compile into a private directory
        out = Path(tempfile.mkdtemp(prefix="kalkan-catalogs-"))
        _compile_into(source, out)
        return out


def _compile_into(source: Path, out: Path) -> None:
    for po in sorted(source.glob("*/LC_MESSAGES/messages.po")):
        mo = out / po.relative_to(source).with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as f:
            catalog = read_po(f, locale=po.parent.parent.name)
        tmp = mo.with_suffix(".mo.tmp")
        with tmp.open("wb") as f:
            write_mo(f, catalog)
        tmp.replace(mo)  # whole or not at all: another process may be reading it


# --- words the templates need for stored values (roles, actions, categories) ----------------

def role_name(role: str) -> str:
    names = {Role.COUNCIL: _("council member"), Role.RESPONSIBLE: _("responsible person"),
             Role.TEACHER: _("teacher"), Role.DIRECTOR: _("director")}
    return names.get(role, role)  # type: ignore[call-overload]


def action_word(action: str) -> str:
    return {"allow": _("allow"), "block": _("block")}.get(action) or _("by mode")


def change_word(change: str) -> str:
    return {"added": _("added"), "removed": _("removed"), "changed": _("changed")}.get(
        change, change)


def category_name(category: dict[str, Any]) -> str:
    """The category's own translated name (they are part of the policy, not the catalogs)."""
    names = category.get("names") or {}
    return names.get(current_language()) or names.get("en") or category["id"]


def ident(value: object) -> Markup:
    """An id from the policy (group, room, category) shown as such: data, never translated."""
    return Markup("<code>{}</code>").format(value)


def current_language() -> str:
    return str(get_locale() or current_app.config.get("BABEL_DEFAULT_LOCALE", "en"))


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(compile_catalogs()))
    babel.init_app(app, locale_selector=pick_locale, timezone_selector=school_timezone)
    app.jinja_env.globals.update(
        AUTONYMS=AUTONYMS, LANGUAGES=LANGUAGES, current_language=current_language,
        role_name=role_name, action_word=action_word, change_word=change_word,
        category_name=category_name)
    app.add_template_filter(ident)
