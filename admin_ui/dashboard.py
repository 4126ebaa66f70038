"""The responsible person's dashboard (regulations 2.5, 2.7): use and blocks over time, the
most blocked sites and categories, lessons in progress, open alerts, and whether the gateway
is filtering (DNS, upstreams, event writers, blocklists).

The landing page of the council, the responsible person and the director. The counts come
from :mod:`admin_ui.dashboard_figures`; the rest is small and read at each view.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Blueprint, Flask, current_app, g, render_template, request
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from admin_ui.access import READERS, roles
from admin_ui.alerts_page import OpenAlerts, open_alerts
from admin_ui.charts import stacked_bars
from admin_ui.dashboard_figures import FigureCache, Figures
from admin_ui.db import close_db, get_db, get_sessions
from admin_ui.languages import current_language
from admin_ui.today_panel import today_section
from blocklists.sources import list_sources
from gateway.status import GatewayStatus, read_status
from policies.models import Room, StaffUser
from policies.revisions import latest_revision
from policies.sessions import list_sessions

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
log = logging.getLogger(__name__)

CACHE_SECONDS = 15.0  # how old the counts may be (config DASHBOARD_CACHE_SECONDS)
STATUS_SECONDS = 2.0  # the gateway's processes write their status every 3 s


def figures() -> Figures:
    caches = current_app.extensions.setdefault("kalkan.dashboard", {})
    school = g.get("school")  # in a district, each school has its own figures
    cache = caches.get(school)
    if cache is None:
        cache = caches[school] = FigureCache(
            get_sessions(), current_app.config.get("DASHBOARD_CACHE_SECONDS", CACHE_SECONDS))
    return cache.get()


def warm_up(app: Flask) -> threading.Thread | None:
    """Compute the figures in the background as the admin starts, so that the first
    dashboard view does not wait for them (with 10 million events, seconds). Not for a
    district's admin: its schools' figures are computed when looked at."""
    if app.config.get("DISTRICT_URL"):
        return None

    def run() -> None:
        with app.app_context():
            try:
                figures()
            except Exception:  # the first view tries again, and says what failed
                log.exception("dashboard: the figures could not be computed at start")
            finally:
                close_db()

    thread = threading.Thread(target=run, name="kalkan-dashboard-warm-up", daemon=True)
    thread.start()
    return thread


def gateway_status() -> GatewayStatus | None:
    """What the gateway's processes last wrote, when this admin runs beside them
    (``kalkan run`` gives the config); None for an admin on its own."""
    config = current_app.config.get("KALKAN_CONFIG")
    if config is None:
        return None
    at, status = current_app.extensions.get("kalkan.gateway_status", (0.0, None))
    if status is None or time.monotonic() - at > STATUS_SECONDS:
        status = read_status(config, get_db())
        current_app.extensions["kalkan.gateway_status"] = (time.monotonic(), status)
    return status


def charts(f: Figures) -> tuple[Markup, Markup]:
    """The two charts as SVG, drawn once per figures and language: hundreds of numbers that
    would otherwise be formatted and escaped again at every view."""
    key = (f.computed_at, current_language())
    cache = current_app.extensions.setdefault("kalkan.dashboard_charts", {})
    drawn = cache.get(key)
    if drawn is None:
        hours = render_template("dashboard/_chart.html", chart=stacked_bars(
            f.hours_today, label_every=3), title=_("Requests and blocked attempts today, per hour"))
        days = render_template("dashboard/_chart.html", chart=stacked_bars(
            [(d.strftime("%d.%m"), a, b) for d, a, b in f.days]),
            title=_("Requests and blocked attempts in the last 7 days"))
        drawn = (Markup(hours), Markup(days))
        if len(cache) > 20:  # old figures' charts: five languages, a few renewals
            cache.clear()
        cache[key] = drawn
    return drawn


def top_tables(f: Figures) -> Markup:
    """The most blocked sites and categories, drawn once per figures and language like the
    charts (forty links to the access log, each built and escaped)."""
    key = (f.computed_at, current_language(), request.script_root)
    cache = current_app.extensions.setdefault("kalkan.dashboard_top", {})
    drawn = cache.get(key)
    if drawn is None:
        drawn = Markup(render_template("dashboard/_top.html", f=f))
        if len(cache) > 20:
            cache.clear()
        cache[key] = drawn
    return drawn


@bp.get("/")
@roles(*READERS)
def index() -> str:
    db = get_db()
    me = db.get(StaffUser, current_user.id)
    f = figures()
    alerts = open_alerts(db, me) if me else OpenAlerts([], 0)
    sources = list_sources(db)
    updated = [s.last_success_at for s in sources if s.last_success_at]
    return render_template(
        "dashboard/index.html", f=f,
        charts=charts(f), top=top_tables(f),
        sessions=list_sessions(db), room_names={r.id: r.name for r in db.scalars(select(Room))},
        alerts=alerts, status=gateway_status(),
        revision=latest_revision(db), sources=sources,
        last_update=max(updated) if updated else None,
        failed_sources=[s for s in sources if s.last_error], today=today_section())

