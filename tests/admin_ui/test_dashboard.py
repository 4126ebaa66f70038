"""The responsible person's dashboard: counts from the writer's hourly tables, exact; top
sites and categories; open alerts with evidence; the teacher's alerts and "acknowledged"."""

from __future__ import annotations

import re
import time

from sqlalchemy import func, select, text

from admin_ui.models import AuditAction, AuditEntry
from gateway.alerts.models import Alert
from gateway.events.models import AccessRecord, BlockedSiteHour, HourCount
from gateway.events.rollup import backfill
from tests.admin_ui.dashboard_data import add_alert, allowed, blocked, write_events

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff


def figure(html: str, label: str) -> int:
    match = re.search(r'<span class="figure">([\d\s,\xa0\u202f]+)</span>' + re.escape(label),
                      html)
    assert match, f"no figure for {label!r}"
    return int(re.sub(r"\D", "", match[1]))


def test_the_dashboard_counts_what_the_writer_stored(school, sqlite_url, staff, tmp_path):
    events = ([blocked("roblox.com") for _ in range(7)] + [blocked("tiktok.com", "social")] * 3
              + [blocked("doubleclick.net", "ads")] * 2
              + [allowed("bilimland.kz") for _ in range(5)])
    write_events(school, sqlite_url, events, tmp_path)
    html = staff("admin").page("/dashboard/", lang="en")
    # ads are background noise: counted as requests, not as a person's attempts
    assert figure(html, "requests today") == 17
    assert figure(html, "blocked attempts today") == 10
    assert figure(html, "blocked in the background (ads, telemetry)") == 2
    top = html.split("Most blocked sites today")[1]
    assert top.index("roblox.com") < top.index("tiktok.com")
    assert "doubleclick.net" not in top.split("Most blocked sites, 7 days")[0]
    assert '<svg class="chart"' in html and 'class="bar-blocked"' in html
    assert "style=" not in html  # the CSP would refuse inline styles


def test_the_hourly_counts_equal_the_rows_and_a_backfill_agrees(school, sqlite_url, tmp_path):
    hour_ago = time.time() - 3600
    events = ([blocked("roblox.com", at=hour_ago + i) for i in range(40)]
              + [blocked("1xbet.com", "gambling") for _ in range(25)]
              + [allowed("lib.kg", at=hour_ago) for _ in range(9)])
    write_events(school, sqlite_url, events[:30], tmp_path)  # two batches: counts add up
    write_events(school, sqlite_url, events[30:], tmp_path)
    with school() as db:
        rows = db.scalar(select(func.count()).select_from(AccessRecord)
                         .where(AccessRecord.action == "block"))
        counted = db.scalar(select(func.sum(HourCount.count)).where(HourCount.action == "block"))
        allowed_n = db.scalar(select(func.sum(HourCount.count))
                              .where(HourCount.action == "allow"))
        assert rows == counted == 65 and allowed_n == 9
        before = sorted(tuple(r) for r in db.execute(select(BlockedSiteHour)
                        .with_only_columns(BlockedSiteHour.hour, BlockedSiteHour.host,
                                           BlockedSiteHour.count)))
        before_hours = sorted(tuple(r) for r in db.execute(
            select(HourCount.hour, HourCount.action, HourCount.category, HourCount.count)))
        db.execute(text("DELETE FROM access_hours"))
        db.execute(text("DELETE FROM blocked_site_hours"))
        backfill(db.connection())  # what the migration does for rows stored before it
        db.commit()
        after = sorted(tuple(r) for r in db.execute(select(BlockedSiteHour)
                       .with_only_columns(BlockedSiteHour.hour, BlockedSiteHour.host,
                                          BlockedSiteHour.count)))
        after_hours = sorted(tuple(r) for r in db.execute(
            select(HourCount.hour, HourCount.action, HourCount.category, HourCount.count)))
    assert before == after and before_hours == after_hours


def test_open_alerts_with_evidence_for_all_on_the_dashboard(school, staff):
    with school() as db:
        add_alert(db, class_id="7B", host="pornhub.com", attempts=4)
        add_alert(db, class_id="10A", host="1xbet.com", category="gambling")
    html = staff("director").page("/dashboard/")
    assert "pornhub.com" in html and "1xbet.com" in html
    assert "acknowledge" not in html  # the director reads, never acts


def test_a_teacher_sees_and_acknowledges_only_their_classes_alerts(school, staff):
    with school() as db:
        mine = add_alert(db, class_id="7B", host="pornhub.com", attempts=4).id
        other = add_alert(db, class_id="10A", host="1xbet.com", category="gambling").id
    aigul = staff("aigul")  # class teacher of 7B
    html = aigul.page("/lessons/")
    assert "pornhub.com" in html and "1xbet.com" not in html
    assert re.search(r"<td>pornhub\.com</td><td>adult</td><td>4</td>", html)
    assert aigul.post(f"/alerts/{other}/acknowledge").status_code == 404
    response = aigul.post(f"/alerts/{mine}/acknowledge", next="/lessons/")
    assert response.status_code == 302 and response.location.endswith("/lessons/")
    assert "pornhub.com" not in aigul.page("/lessons/")
    with school() as db:
        assert db.get(Alert, mine).status == "acknowledged"
        assert db.get(Alert, other).status == "open"
        entry = db.scalar(select(AuditEntry).where(
            AuditEntry.action == AuditAction.ALERT_ACKNOWLEDGED.value))
        assert entry.actor == "aigul" and entry.target == f"alert #{mine}"


def test_sign_in_lands_readers_on_the_dashboard(staff):
    for username in ("admin", "council", "director"):
        response = staff().sign_in(username)
        assert response.location.endswith("/dashboard/"), username
    assert staff().sign_in("aigul").location.endswith("/lessons/")


def test_postgresql_keeps_the_same_counts_and_the_dashboard_reads_them(postgres_url, tmp_path):
    from admin_ui.dashboard_figures import compute
    from admin_ui.staff import give_demo_passwords
    from policies.database import migrate, open_engine, session_factory
    from policies.demo import seed_demo
    from tests.admin_ui.admin_client import FAST_HASH

    engine = open_engine(postgres_url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as db:
        seed_demo(db)
        give_demo_passwords(db, method=FAST_HASH)
    events = [blocked("roblox.com") for _ in range(6)] + [allowed("lib.kg")] * 4
    write_events(sessions, postgres_url, events, tmp_path)
    write_events(sessions, postgres_url, [blocked("roblox.com")], tmp_path)  # upserts add
    with sessions() as db:
        f = compute(db)
        assert (f.today.requests, f.today.blocked) == (11, 7)
        assert f.sites_today == [("roblox.com", "games", 7)]
        db.execute(text("DELETE FROM access_hours"))
        db.execute(text("DELETE FROM blocked_site_hours"))
        backfill(db.connection())  # the migration's query, in PostgreSQL's dialect
        db.commit()
        f = compute(db)
        assert (f.today.requests, f.today.blocked) == (11, 7)
        assert f.sites_today == [("roblox.com", "games", 7)]
    engine.dispose()


def test_site_totals_read_again_only_what_changed_and_stay_exact(school, sqlite_url, tmp_path):
    from admin_ui.dashboard_figures import SiteTotals, compute

    day = 86400
    write_events(school, sqlite_url, [blocked("roblox.com", at=time.time() - 3 * day)] * 3
                 + [blocked("tiktok.com", "social")] * 2, tmp_path)
    kept = SiteTotals()
    with school() as db:
        first = compute(db, sites=kept)
    assert first.sites_week == [("roblox.com", "games", 3), ("tiktok.com", "social", 2)]
    assert first.sites_today == [("tiktok.com", "social", 2)]
    past_day = next(iter(kept.days.values()))
    write_events(school, sqlite_url, [blocked("tiktok.com", "social")] * 4
                 + [blocked("1xbet.com", "gambling", at=time.time() - 3 * day)], tmp_path)
    with school() as db:
        again, fresh = compute(db, sites=kept), compute(db)
    assert again.sites_week == fresh.sites_week == [
        ("tiktok.com", "social", 6), ("roblox.com", "games", 3), ("1xbet.com", "gambling", 1)]
    assert again.sites_today == fresh.sites_today == [("tiktok.com", "social", 6)]
    assert next(iter(kept.days.values())) is not past_day  # the late attempt was read
