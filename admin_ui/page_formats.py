"""Numbers, clock times and translations for templates, looked up once per request.

Flask-Babel finds the locale, the time zone and the catalog again at every ``_()`` and every
format call (a tenth of a millisecond each); a dashboard or a lesson page with a few hundred
of them spent most of its time there. Here they are found once per request (on ``g``), and
the template filters format with what was found: the same words and the same locale rules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from babel import Locale
from babel.numbers import format_decimal, get_group_symbol
from babel.support import NullTranslations
from flask import Flask, g
from flask_babel import get_locale, get_timezone, get_translations


@dataclass(frozen=True, slots=True)
class PageFormats:
    locale: Locale
    zone: dt.tzinfo
    translations: NullTranslations
    group: str  # the thousands separator: "12 345" in ru, "12,345" in en
    clock: str  # strftime pattern of a short time: 24 h, or 12 h where the locale says so

    @classmethod
    def of_request(cls) -> PageFormats:
        found = g.get("_kalkan_formats")
        if found is None:
            locale = get_locale() or Locale.parse("en")
            pattern = locale.time_formats["short"].pattern
            found = cls(locale, get_timezone(), get_translations(), get_group_symbol(locale),
                        "%I:%M %p" if "h" in pattern else "%H:%M")
            g._kalkan_formats = found
        return found


def number(value: Any) -> str:
    """A count in the reader's locale (12 345 in ru, ky, kk, uz; 12,345 in en)."""
    f = PageFormats.of_request()
    if isinstance(value, int):
        return f"{value:,}".replace(",", f.group)
    return format_decimal(value, locale=f.locale)


def clock(value: dt.datetime | None) -> str:
    """The school's time of a stored (naive UTC) moment, as a short clock time."""
    if value is None:
        return ""
    f = PageFormats.of_request()
    local = value.replace(tzinfo=dt.UTC).astimezone(f.zone)
    return local.strftime(f.clock).lstrip("0") if f.clock.startswith("%I") else \
        local.strftime(f.clock)


def init_app(app: Flask) -> None:
    """After Flask-Babel's: templates translate through the request's catalog."""
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: PageFormats.of_request().translations.ugettext(s),
        ngettext=lambda s, p, n: PageFormats.of_request().translations.ungettext(s, p, n),
        newstyle=True)
    app.add_template_filter(number)
    app.add_template_filter(clock)
