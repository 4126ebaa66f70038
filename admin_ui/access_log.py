"""The access log page (regulation 2.7): filters, pages by keyset, and a CSV export.

Pages go by keyset (the time and id of the last row shown), never by offset: page 500 of
ten million rows costs what page 1 does, one backwards walk of an index from a known row.
The CSV export streams the same filtered rows in chunks, so its size is not held in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_babel import gettext as _
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from admin_ui.access import READERS, roles
from admin_ui.db import get_db
from gateway.events.models import AccessRecord, HourCount
from gateway.events.reports import school_zone
from policies.models import Group

bp = Blueprint("access_log", __name__, url_prefix="/log")

A = AccessRecord
PAGE_SIZE = 100
EXPORT_CHUNK = 2000
SOURCES = {"dns": ("dns",), "proxy": ("http", "tls")}
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what Excel would run as a formula


class BadFilter(ValueError):
    """A filter value that cannot be used; the message says what to type instead."""


@dataclass(frozen=True, slots=True)
class LogFilter:
    since: dt.datetime | None = None  # naive UTC
    until: dt.datetime | None = None
    client: str = ""  # an IP address, or a device's name
    group: str = ""
    class_id: str = ""
    site: str = ""  # part of the site's name
    action: str = ""
    category: str = ""
    source: str = ""  # dns or proxy
    bypass: bool = False

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.since is not None:
            query = query.where(A.time >= self.since)
        if self.until is not None:
            query = query.where(A.time < self.until)
        if self.client:
            query = query.where(A.client == self.client if _is_address(self.client)
                                else A.device_id == self.client)
        for column, value in ((A.group_id, self.group), (A.class_id, self.class_id),
                              (A.action, self.action), (A.category, self.category)):
            if value:
                query = query.where(column == value)
        if self.site:
            pattern = self.site.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(A.host.like(f"%{pattern}%", escape="\\"))
        if self.source:
            query = query.where(A.channel.in_(SOURCES[self.source]))
        if self.bypass:
            query = query.where(A.bypass.is_(True))
        return query


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_filter(args: Any, zone: ZoneInfo) -> LogFilter:
    """The filter from the page's query string; times are the school's."""
    action = args.get("action", "")
    source = args.get("source", "")
    if action not in ("", "allow", "block"):
        raise BadFilter(_("Choose the action from the list."))
    if source not in ("", *SOURCES):
        raise BadFilter(_("Choose the source from the list."))
    return LogFilter(
        since=_moment(args.get("since", ""), zone), until=_moment(args.get("until", ""), zone),
        client=args.get("client", "").strip()[:64], group=args.get("group", "").strip()[:64],
        class_id=args.get("class", "").strip()[:16], site=args.get("site", "").strip()[:253],
        action=action, category=args.get("category", "").strip()[:64], source=source,
        bypass=args.get("bypass") == "1")


def _moment(text: str, zone: ZoneInfo) -> dt.datetime | None:
    """``2026-11-25T10:00`` or ``2026-11-25`` in school time, as naive UTC."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadFilter(_("%(text)s is not a date and time; use the calendar, e.g. "
                          "2026-11-25 10:00.", text=repr(text))) from None
    return moment.replace(tzinfo=zone).astimezone(dt.UTC).replace(tzinfo=None)


def parse_cursor(text: str) -> tuple[dt.datetime, int] | None:
    """``<time>_<id>`` of the last row of the previous page."""
    stamp, _sep, ident = text.rpartition("_")
    try:
        return dt.datetime.fromisoformat(stamp), int(ident)
    except ValueError:
        return None


def cursor_of(record: AccessRecord) -> str:
    return f"{record.time.isoformat()}_{record.id}"


def page_of(db: Session, where: LogFilter, after: tuple[dt.datetime, int] | None,
            size: int = PAGE_SIZE) -> tuple[list[AccessRecord], bool]:
    """Up to ``size`` rows, newest first, older than ``after``; and whether more follow."""
    query = where.apply(select(A))
    if after is not None:
        time, ident = after
        query = query.where(or_(A.time < time, and_(A.time == time, A.id < ident)))
    rows = list(db.scalars(query.order_by(A.time.desc(), A.id.desc()).limit(size + 1)))
    return rows[:size], len(rows) > size


def known_categories(db: Session) -> list[str]:
    """The categories that occur in the counts (a few thousand rows, not the log)."""
    return sorted(c for c in db.scalars(select(HourCount.category).distinct()) if c)


@bp.get("/")
@roles(*READERS)
def index() -> tuple[str, int] | str:
    db = get_db()
    zone = school_zone(db)
    error = None
    rows: list[AccessRecord] = []
    more = False
    try:
        where = parse_filter(request.args, zone)
        rows, more = page_of(db, where, parse_cursor(request.args.get("after", "")))
    except BadFilter as exc:
        error = str(exc)
    args = {k: v for k, v in request.args.items() if k != "after" and v}
    page = render_template(
        "log/index.html", rows=rows, error=error, args=args,
        next_cursor=cursor_of(rows[-1]) if more else None, first_page="after" not in request.args,
        groups=db.scalars(select(Group).order_by(Group.position)).all(),
        categories=known_categories(db))
    return (page, 400) if error else page


def csv_cell(value: object) -> str:
    """A cell that a spreadsheet shows as text: never a formula (=, +, -, @ first)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(db: Session, where: LogFilter, zone: ZoneInfo) -> Iterator[str]:
    """The CSV text, a chunk of rows at a time, beginning with a byte-order mark: Excel
    then reads UTF-8 (Cyrillic names) instead of the system's code page."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([_("Time"), _("Source"), _("Client"), _("Device"), _("Room"), _("Class"),
                     _("Group"), _("Site"), _("Action"), _("Reason"), _("Category"),
                     _("Bypass"), _("Background"), _("Address")])
    yield "\ufeff" + out.getvalue()
    after = None
    while True:
        rows, more = page_of(db, where, after, EXPORT_CHUNK)
        out.seek(0)
        out.truncate()
        for r in rows:
            local = r.time.replace(tzinfo=dt.UTC).astimezone(zone)
            writer.writerow([csv_cell(v) for v in (
                local.strftime("%Y-%m-%d %H:%M:%S"), r.channel, r.client, r.device_id,
                r.room_id, r.class_id, r.group_id, r.host, r.action, r.reason, r.category,
                "1" if r.bypass else "", r.noise, r.url)])
        yield out.getvalue()
        if not more:
            return
        after = (rows[-1].time, rows[-1].id)
        db.expunge_all()  # a long export does not keep every row it has sent


@bp.get("/export.csv")
@roles(*READERS)
def export() -> Response | tuple[str, int]:
    db = get_db()
    zone = school_zone(db)
    try:
        where = parse_filter(request.args, zone)
    except BadFilter as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    name = f"kalkan-log-{dt.datetime.now(zone):%Y%m%d-%H%M}.csv"
    return Response(stream_with_context(csv_lines(db, where, zone)),
                    mimetype="text/csv", headers={
                        "Content-Disposition": f'attachment; filename="{name}"',
                        "Cache-Control": "no-store"})
