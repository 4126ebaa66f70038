"""The dashboard and the access log in Chromium: the charts are drawn, the filters work, and
the CSV export downloads what Excel needs. Screenshots at phone and desktop size (into
docs/screenshots with KALKAN_SCREENSHOTS=1, as test_browser.py makes the others)."""

from __future__ import annotations

import time

import pytest

from tests.admin_ui.dashboard_data import add_alert, allowed, blocked, write_events
from tests.admin_ui.test_browser import (  # noqa: F401 - fixtures: browser, shots, live
    DESKTOP,
    PHONE,
    browser,
    live,
    open_context,
    shots,
    sign_in,
)

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff
pytestmark = pytest.mark.slow


@pytest.fixture
def busy_day(school, sqlite_url, tmp_path):
    """A school day so far: lessons' traffic, blocked attempts, one alert with evidence."""
    now = time.time()
    events = []  # blocked attempts well apart from page loads: not taken for page resources
    for minute in range(0, 180, 3):
        at = now - minute * 60
        events += [allowed("bilimland.kz", at=at), allowed("lib.kg", at=at + 1)]
        if minute % 9 == 0:
            events.append(blocked("roblox.com", at=at + 40, device="lab1-pc03"))
        if minute % 15 == 0:
            events.append(blocked("tiktok.com", "social", at=at + 80, device="lab1-pc07"))
    events.append(blocked("vpn-free.example", "proxy_vpn", at=now - 30, bypass=True))
    write_events(school, sqlite_url, events, tmp_path)
    with school() as db:
        add_alert(db, class_id="7B", host="pornhub.com", device="lab1-pc05", attempts=6)
    return school


def test_dashboard_and_log_with_csv_export(browser, busy_day, live, shots, tmp_path):  # noqa: F811
    for name, options in (("desktop", DESKTOP), ("phone", PHONE)):
        context = open_context(browser, **options, accept_downloads=True)
        try:
            page = context.new_page()
            sign_in(page, live, "admin")
            page.goto(f"{live}/dashboard/")
            assert page.locator("h1").inner_text() == "Dashboard"
            assert page.locator("svg.chart rect.bar-blocked").count() == 24 + 7
            assert page.locator("svg.chart").first.bounding_box()["height"] > 50  # drawn
            top = page.locator("table.top").first.inner_text()
            assert top.index("roblox.com") < top.index("tiktok.com")
            assert "pornhub.com" in page.locator("#alert-1").inner_text()
            page.screenshot(path=str(shots / f"dashboard-{name}.png"), full_page=True)

            page.click("table.top >> text=roblox.com")  # a top site opens its log lines
            page.wait_for_load_state()
            assert "site=roblox.com" in page.url
            sites = page.locator("td.site").all_inner_texts()
            assert sites and set(sites) == {"roblox.com"}
            page.goto(f"{live}/log/")
            page.check('input[name="bypass"]')
            page.click("form.filters button")
            page.wait_for_load_state()
            assert page.locator("td.site").all_inner_texts() == ["vpn-free.example"]
            page.goto(f"{live}/log/?action=block")
            page.screenshot(path=str(shots / f"log-{name}.png"), full_page=name == "desktop")

            with page.expect_download() as info:
                page.click("text=Export CSV")
            path = tmp_path / f"{name}.csv"
            info.value.save_as(path)
            data = path.read_bytes()
            assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads it as UTF-8
            lines = data.decode("utf-8-sig").splitlines()
            assert lines[0].startswith("Time,Source,Client")
            assert len(lines) == 1 + 20 + 12 + 1  # every blocked attempt of the day
        finally:
            context.close()
