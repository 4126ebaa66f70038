"""Five languages: complete catalogs, the choice per user and per browser, and pages with no
string left in English."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from admin_ui.languages import CATALOGS
from policies.categories import LANGUAGES
from tests.admin_ui.admin_client import Staff

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
TRANSLATED = [lang for lang in LANGUAGES if lang != "en"]


def source_messages() -> set[str]:
    """Every string the code and the templates mark for translation, extracted now."""
    method_map = [("admin_ui/**.py", "python"), ("admin_ui/templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), method_map=method_map):
        found.add(message if isinstance(message, str) else message[0])
    return found


def catalog(lang: str):  # type: ignore[no-untyped-def]
    with (CATALOGS / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=lang)


@pytest.fixture(scope="module")
def messages() -> set[str]:
    return source_messages()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_catalog_has_every_string_translated(lang, messages):
    cat = catalog(lang)
    entries = {m.id: m for m in cat if m.id}
    missing = sorted(messages - entries.keys())
    assert not missing, f"{lang}: not in the catalog (run pybabel update): {missing}"
    untranslated = sorted(m for m in messages if not entries[m].string or entries[m].fuzzy)
    assert not untranslated, f"{lang}: no translation yet: {untranslated}"
    stale = sorted(entries.keys() - messages)
    assert not stale, f"{lang}: strings no longer in the code: {stale}"
    for mid in messages:
        assert sorted(PLACEHOLDER.findall(entries[mid].string)) == sorted(
            PLACEHOLDER.findall(mid)), f"{lang}: placeholders differ in {mid!r}"


def test_the_language_follows_the_user_then_the_browser(staff):
    visitor = staff()
    assert "Войти" in visitor.client.get("/login", headers={"Accept-Language": "ru,en;q=0.5"}
                                         ).get_data(as_text=True)
    assert "Kirish" in visitor.client.get("/login", headers={"Accept-Language": "uz-UZ"}
                                          ).get_data(as_text=True)
    council = staff("council")  # the demo council member reads Kyrgyz
    html = council.client.get("/council/", headers={"Accept-Language": "en"}).get_data(
        as_text=True)
    assert '<html lang="ky">' in html and "Топтор жана категориялар" in html
    council.post("/language", lang="kk", next="/council/")
    html = council.client.get("/council/").get_data(as_text=True)
    assert "Топтар мен санаттар" in html
    assert "Топтар мен санаттар" in staff("council").page("/council/")  # kept on the account
    visitor.post("/language", lang="uz", next="/login")
    assert visitor.client.get_cookie("kalkan_lang").value == "uz"
    assert "Kirish" in visitor.page("/login")


def test_the_language_switch_never_leads_off_the_site(staff):
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        assert staff().post("/language", lang="ru", next=target).location == "/"


def test_dates_are_written_the_users_way(staff):
    council = staff("council")
    assert "28 авг. 2026\u202fг." in council.page("/council/history", lang="ru")
    assert "Aug 28, 2026" in council.page("/council/history", lang="en")


def visible_text(html: str) -> str:
    """What a reader sees of the page's own words: not the policy's data in <pre>, <textarea>
    or <code> (ids), and not attributes (tag contents are dropped)."""
    html = re.sub(r"<(pre|textarea|script|code)\b.*?</\1>", " ", html, flags=re.S)
    return unescape(re.sub(r"<[^>]+>", "\n", html))


def english_left(html: str, lang: str) -> list[str]:
    entries = {m.id: m.string for m in catalog(lang) if m.id}
    text = visible_text(html)
    left = []
    for mid, translation in entries.items():
        if translation == mid:
            continue  # the same in both languages (OK, a placeholder pair)
        pattern = re.escape(mid)
        for name in set(PLACEHOLDER.findall(mid)):
            pattern = pattern.replace(re.escape(name), ".+?")
        if re.search(rf"(?<![\w]){pattern}(?![\w])", text):
            left.append(mid)
    return left


PAGES = {
    "admin": ["/", "/accounts/", "/accounts/2", "/accounts/me", "/audit/", "/check",
              "/check?host=lib.kg&group=middle", "/policy", "/council/",
              "/council/groups/middle", "/council/sites", "/council/history",
              "/council/history/1", "/council/history/2", "/council/import", "/no-such-page",
              "/dashboard/", "/log/", "/log/?action=block&site=roblox"],
    "aigul": ["/lessons/", "/lessons/requests", "/council/"],
    None: ["/login"],
}


@pytest.fixture
def busy_school(school, staff):
    """A school with a second revision, an open lesson and a student's request in it."""
    from tests.admin_ui.test_lessons import add_request, open_for

    staff("council").post("/council/", {"cell|senior|video": "block",
                                        "cell|middle|games": "", "protocol": "2",
                                        "decision_date": "2026-09-01"})
    staff("council").post("/council/sites", allow="school1.edu.kg\nkitep.kg", block="",
                          protocol="3", decision_date="2026-09-02")
    add_request(school, open_for(school, focus=["bilimland.kz"]), "wikipedia.org",
                message="for the essay")
    return school


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_page_speaks_the_language_with_no_english_left(lang, busy_school, staff):
    for username, urls in PAGES.items():
        person: Staff = staff(username)
        for url in urls:
            sep = "&" if "?" in url else "?"
            response = person.client.get(f"{url}{sep}lang={lang}")
            assert response.status_code in (200, 403, 404), url
            html = response.get_data(as_text=True)
            assert "<html" not in html or f'<html lang="{lang}">' in html, url
            assert english_left(html, lang) == [], f"{url} as {username} in {lang}"
