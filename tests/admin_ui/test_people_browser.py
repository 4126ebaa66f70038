"""The responsible person's pages in a real browser (Playwright driving Debian's Chromium): a
report stored by the block page is resolved into a block with a council decision, and
`kalkan check` follows; the main pages at phone and desktop size (screenshots)."""

# ruff: noqa: F811 - the fixtures imported from test_browser are parameters here
from __future__ import annotations

import pytest
from click.testing import CliRunner

from gateway.cli import main as kalkan
from policies.models import RequestKind
from tests.admin_ui.test_browser import (  # noqa: F401  (fixtures)
    DESKTOP,
    PHONE,
    browser,
    live,
    open_context,
    shots,
    sign_in,
)
from tests.admin_ui.test_review_queue import ask
from tests.admin_ui.test_timetable import add_lesson

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff

pytestmark = pytest.mark.slow

STAFFROOM = "10.10.9.20"


def test_a_report_from_the_block_page_becomes_a_block_with_a_council_decision(
        browser, live, school, sqlite_url, tmp_path, shots):
    config = tmp_path / "kalkan.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\ndatabase:\n  url: \"{sqlite_url}\"\n")

    def check(host: str) -> str:
        return CliRunner().invoke(kalkan, ["--config", str(config), "check", host, "--client",
                                           STAFFROOM, "--at", "2030-11-27T10:00"]).output

    assert check("slipped.example").startswith("Allowed")
    ask(school, RequestKind.REPORT, "slipped.example", client=STAFFROOM, group="teachers",
        message="<b>a casino</b> inside a game site")
    context = open_context(browser, **DESKTOP)
    try:
        page = context.new_page()
        sign_in(page, live, "admin")
        page.click("nav a:has-text('Reviews and reports')")
        card = page.locator(".request", has_text="slipped.example")
        assert "“<b>a casino</b> inside a game site”" in card.inner_text()  # shown, escaped
        page.screenshot(path=str(shots / "queue-desktop.png"), full_page=True)
        card.locator("summary").click()
        form = card.locator("form", has_text="Change the site lists")
        assert form.locator('input[value="block"]').is_checked()  # a report: block
        form.locator('input[name="protocol"]').fill("31")
        form.locator('input[name="decision_date"]').fill("2026-11-24")
        form.locator("button:has-text('Change the site lists')").click()
        page.wait_for_load_state()
        assert "Saved as revision 2" in page.locator(".flash").inner_text()
        assert "Open: 0" in page.locator("main").inner_text()
        output = check("slipped.example")
        assert output.startswith("Blocked") and "protocol No 31 of 2026-11-24" in output
        page.goto(f"{live}/queue/?show=all")
        assert "resolved · admin" in page.locator(".request").inner_text()
        page.goto(f"{live}/council/history/2")
        assert "slipped.example" in page.locator("main").inner_text()
    finally:
        context.close()


PAGES = [("rooms", "/rooms/"), ("classes", "/classes/?edit=7B"),
         ("students", "/classes/7B/students/"), ("timetable", "/timetable/"),
         ("blocklists", "/blocklists/"), ("notifications", "/notifications/")]


def test_the_pages_fit_a_phone_and_a_desktop(browser, live, school, shots):
    add_lesson(school, mode="focus", sites=["bilimland.kz"])
    add_lesson(school, weekday=0, start="08:30", end="09:15")
    ask(school, RequestKind.REVIEW, "chess.com", message="chess club")
    for size, options in (("phone", PHONE), ("desktop", DESKTOP)):
        context = open_context(browser, **options)
        try:
            page = context.new_page()
            sign_in(page, live, "admin")
            for name, url in PAGES + ([("queue", "/queue/")] if size == "phone" else []):
                page.goto(f"{live}{url}")
                assert page.locator("h1").is_visible()
                # Nothing wider than the screen: tables scroll inside their own box.
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, f"{url} is {overflow} px too wide on a {size}"
                page.screenshot(path=str(shots / f"{name}-{size}.png"), full_page=True)
        finally:
            context.close()
