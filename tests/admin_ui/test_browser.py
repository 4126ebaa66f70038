"""The admin in a real browser: Playwright driving Debian's Chromium against the real app, the
real engine and the `kalkan` command line. One browser for the whole run; a few scenarios.

Screenshots go to a temporary directory, or to docs/screenshots when KALKAN_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from werkzeug.serving import make_server

from gateway.cli import main as kalkan
from policies.engine import Engine
from tests.admin_ui.admin_client import make_app
from tests.admin_ui.test_lessons import PC01, add_request, sessions_of

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 860}}
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium for this module, closed at its end: Playwright's sync API keeps an event
    loop running in this thread while it is open, which asyncio.run() elsewhere refuses."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed; `make test` installs Debian's chromium")
        pytest.skip("Debian's chromium package is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS,
                                     timeout=15000)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("KALKAN_SCREENSHOTS") == "1":
        return ROOT / "docs" / "screenshots"
    return tmp_path_factory.mktemp("screenshots")


def serve(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture
def live(school, sqlite_url: str) -> Iterator[str]:
    """The admin on a loopback port, over the demo school with demo passwords."""
    yield from serve(make_app(sqlite_url, LESSONS_POLL_SECONDS=0.3))


def open_context(browser, **options):  # type: ignore[no-untyped-def]
    context = browser.new_context(**options)
    context.set_default_timeout(5000)  # a page here answers in milliseconds or not at all
    return context


def sign_in(page, base: str, username: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in through the form, then make English the account's language (the demo staff
    read Kyrgyz, Russian or Kazakh), as its owner would on the language switch."""
    page.goto(f"{base}/login?lang=en")
    page.fill("#username", username)
    page.fill("#password", "kalkan-demo")
    page.click("button.big")
    page.wait_for_load_state()
    page.select_option('select[name="lang"]', "en")
    page.click("header .lang button")
    page.wait_for_load_state()


def test_first_run_setup(browser, demo, sqlite_url, shots):
    base_iter = serve(make_app(sqlite_url))
    base = next(base_iter)
    context = open_context(browser, **PHONE, locale="ru-RU")
    try:
        page = context.new_page()
        page.goto(f"{base}/council/")
        assert page.url.endswith("/setup")
        assert page.locator("h1").inner_text() == "Добро пожаловать в kalkan"  # the browser's
        page.screenshot(path=str(shots / "setup-phone.png"), full_page=True)
        page.fill("#username", "aliya")
        page.fill("#full_name", "Aliya Bekova")
        page.fill("#password", "a long passphrase")
        page.fill("#password2", "a long passphrase")
        page.select_option("#language", "ky")
        page.click("button.big")
        page.wait_for_url(f"{base}/accounts/")
        assert page.locator("h1").inner_text() == "Аккаунттар"  # now her own language
        page.goto(f"{base}/setup")
        assert "/setup" not in page.url  # done once: the wizard is gone
    finally:
        context.close()
        next(base_iter, None)


def test_the_council_blocks_a_category_and_kalkan_check_reflects_it(
        browser, live, school, sqlite_url, tmp_path, shots):
    config = tmp_path / "kalkan.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\ndatabase:\n  url: \"{sqlite_url}\"\n")

    def check(host: str, client: str) -> str:
        result = CliRunner().invoke(kalkan, ["--config", str(config), "check", host,
                                             "--client", client, "--at", "2030-11-27T10:00"])
        return result.output

    assert check("facebook.com", "10.10.9.20").startswith("Allowed")
    context = open_context(browser, **DESKTOP)
    try:
        page = context.new_page()
        sign_in(page, live, "council")
        page.goto(f"{live}/?lang=en")
        page.screenshot(path=str(shots / "status-desktop.png"), full_page=True)
        page.goto(f"{live}/council/?lang=en")
        page.screenshot(path=str(shots / "council-matrix-desktop.png"))
        # Regulation 3.3: no control at all for a mandatory category of a student group.
        assert page.locator('select[name="cell|middle|adult"]').count() == 0
        assert "blocked: regulation 3.3" in page.locator("tr", has_text="Pornography"
                                                          ).inner_text()
        page.select_option('select[name="cell|teachers|social"]', "block")
        page.fill('input[name="protocol"]', "12")
        page.fill('input[name="decision_date"]', "2026-10-05")
        page.fill('input[name="comment"]', "no social networks in the staff room")
        page.click("button:has-text('Save as a new revision')")
        page.wait_for_load_state()
        assert "Saved as revision 2" in page.locator(".flash").inner_text()
        output = check("facebook.com", "10.10.9.20")
        assert output.startswith("Blocked") and "protocol No 12 of 2026-10-05" in output

        # A forged control for the locked cell is refused, and nothing is saved.
        page.evaluate("""() => { const i = document.createElement('input'); i.type = 'hidden';
            i.name = 'cell|middle|adult'; i.value = 'allow';
            document.querySelector('table.matrix').closest('form').appendChild(i); }""")
        page.fill('input[name="protocol"]', "13")
        page.fill('input[name="decision_date"]', "2026-10-06")
        page.click("button:has-text('Save as a new revision')")
        page.wait_for_load_state()
        assert "regulation 3.3" in page.locator(".error").inner_text()
        assert check("pornhub.com", "10.10.1.101").startswith("Blocked")
        page.goto(f"{live}/council/history/2?lang=en")
        assert "category social: by mode → block" in page.locator("main").inner_text()
        page.screenshot(path=str(shots / "council-revision-desktop.png"), full_page=True)
        page.set_viewport_size(PHONE["viewport"])
        page.goto(f"{live}/council/?lang=ru")
        page.screenshot(path=str(shots / "council-matrix-phone-ru.png"))
    finally:
        context.close()


def test_a_teacher_on_a_phone_opens_a_focus_lesson_and_approves_a_request(
        browser, live, school, shots):
    engine = Engine.from_database(school)
    engine.watch(0.2)  # as a gateway process does (policy.reload_interval)
    context = open_context(browser, **PHONE)
    try:
        page = context.new_page()
        sign_in(page, live, "aigul")
        page.goto(f"{live}/lessons/?lang=en")
        page.check('input[name="class_id"][value="7B"]')
        page.check('input[name="room"][value="lab1"]')
        page.check('input[name="minutes"][value="20"]')
        page.check('input[name="mode"][value="focus"]')
        page.fill("#focus_sites", "bilimland.kz")
        page.click("button:has-text('Open the internet')")
        page.wait_for_load_state()
        [session] = sessions_of(school)
        assert session.mode == "focus" and page.locator(f"#session-{session.id}").is_visible()
        deadline = time.monotonic() + 2
        while engine.decide(PC01, "wikipedia.org").reason != "session_mode":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert engine.decide(PC01, "wikipedia.org").blocked

        # The block page stores the student's request; it appears without a reload.
        page.evaluate("window.kalkanMarker = 1")
        add_request(school, session.id, "wikipedia.org", message="for my history essay")
        page.wait_for_selector(".request", timeout=3000)
        assert page.evaluate("window.kalkanMarker") == 1
        assert "for my history essay" in page.locator(".request").inner_text()
        page.screenshot(path=str(shots / "lessons-phone.png"), full_page=True)
        page.click("button:has-text('Allow for this lesson')")
        approved = time.monotonic()
        page.wait_for_load_state()
        while engine.decide(PC01, "wikipedia.org").blocked:
            assert time.monotonic() - approved < 2.0, "the gateway did not allow it in 2 s"
            time.sleep(0.05)
        # Another flash may still be there: the page's live poll can carry the "open" one back.
        assert page.locator(".flash", has_text="wikipedia.org is allowed for this lesson.").count()

        # A teacher cannot reach the council's pages.
        response = page.goto(f"{live}/council/?lang=en")
        assert response.status == 403
        assert "does not give access" in page.locator("main").inner_text()
        assert page.locator("nav a", has_text="Policy").count() == 0
    finally:
        engine.stop()
        context.close()


