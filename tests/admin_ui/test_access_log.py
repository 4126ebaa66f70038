"""The access log page: filters, keyset pages, school time, and the CSV export (BOM,
formulas defused, the same filters)."""

from __future__ import annotations

import csv
import io
import re
import time

from admin_ui.access_log import csv_cell
from gateway.events.event import Channel
from tests.admin_ui.dashboard_data import allowed, blocked, write_events

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff


def sites(html: str) -> list[str]:
    return re.findall(r'<td class="site">([^<]*)</td>', html)


def test_filters_narrow_the_rows(school, sqlite_url, staff, tmp_path):
    now = time.time()
    write_events(school, sqlite_url, [
        blocked("roblox.com", at=now - 30),
        blocked("tiktok.com", "social", device="lab1-pc07", client="10.10.1.107", at=now - 20),
        blocked("vpn.example", "proxy_vpn", channel=Channel.TLS, bypass=True, at=now - 10),
        allowed("bilimland.kz", at=now - 5),
    ], tmp_path, allowed_events="full")
    admin = staff("admin")
    assert sites(admin.page("/log/")) == ["bilimland.kz", "vpn.example", "tiktok.com",
                                          "roblox.com"]  # newest first
    assert sites(admin.page("/log/", action="block", site="o")) == ["tiktok.com", "roblox.com"]
    assert sites(admin.page("/log/", client="lab1-pc07")) == ["tiktok.com"]
    assert sites(admin.page("/log/", client="10.10.1.107")) == ["tiktok.com"]
    assert sites(admin.page("/log/", source="proxy")) == ["vpn.example"]
    assert sites(admin.page("/log/", bypass="1")) == ["vpn.example"]
    assert sites(admin.page("/log/", category="social")) == ["tiktok.com"]
    assert sites(admin.page("/log/", site="%")) == []  # a wildcard is a plain character
    assert sites(admin.page("/log/", since="2000-01-01T00:00", until="2000-01-02")) == []


def test_a_bad_filter_says_what_to_type(staff):
    response = staff("admin").get("/log/", since="yesterday", lang="en")
    assert response.status_code == 400
    assert "is not a date and time" in response.get_data(as_text=True)
    assert staff("admin").get("/log/", action="drop").status_code == 400


def test_pages_follow_by_keyset_without_gaps_or_repeats(school, sqlite_url, staff, tmp_path,
                                                        monkeypatch):
    now = time.time()
    # Same second for many rows: the id breaks ties, so no row is skipped or shown twice.
    events = [blocked(f"site{i:03d}.example", at=now - (i // 7)) for i in range(23)]
    write_events(school, sqlite_url, events, tmp_path)
    monkeypatch.setattr("admin_ui.access_log.PAGE_SIZE", 5)
    admin = staff("admin")
    seen: list[str] = []
    url, params = "/log/", {"action": "block"}
    for _ in range(10):
        html = admin.page(url, **params)
        seen += sites(html)
        match = re.search(r'href="(/log/\?[^"]*after=[^"]*)" rel="next"', html)
        if not match:
            break
        url, params = match[1].replace("&amp;", "&"), {}
        assert "action=block" in url  # the filters stay on the next page
    assert sorted(seen) == sorted(e.host for e in events) and len(seen) == 23


def test_the_time_is_the_schools(school, sqlite_url, staff, tmp_path):
    at = 1_764_000_000  # 2025-11-24 16:00:00 UTC = 22:00 in Bishkek (the demo school)
    write_events(school, sqlite_url, [blocked("roblox.com", at=at)], tmp_path)
    html = staff("admin").page("/log/")
    assert re.search(r"22:00:00|10:00:00\s*PM", html), "the time should be shown in Bishkek time"


def test_csv_export_is_excel_ready_and_filtered(school, sqlite_url, staff, tmp_path):
    now = time.time()
    write_events(school, sqlite_url, [
        blocked("roblox.com", at=now - 3),
        blocked("=cmd.example", device="=HYPERLINK(\"http://x\")", at=now - 2),
        blocked("tiktok.com", "social", at=now - 1),
    ], tmp_path)
    response = staff("admin").get("/log/export.csv", category="games", lang="en")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    body = response.get_data()
    assert body.startswith("\ufeff".encode())  # Excel then reads UTF-8
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][:3] == ["Time", "Source", "Client"]
    hosts = [r[7] for r in rows[1:]]
    assert hosts == ["'=cmd.example", "roblox.com"]  # filtered, newest first, defused
    assert rows[1][3] == "'=HYPERLINK(\"http://x\")"


def test_russian_headers_in_the_export(staff):
    admin = staff("admin")
    admin.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "ru"
    admin.post("/language", lang="ru", next="/log/")
    text = admin.get("/log/export.csv").get_data().decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Время")


def test_csv_cells_never_start_a_formula():
    for value, shown in (("=1+1", "'=1+1"), ("+7 700", "'+7 700"), ("-2", "'-2"),
                         ("@SUM(A1)", "'@SUM(A1)"), ("lib.kg", "lib.kg"), (None, "")):
        assert csv_cell(value) == shown


def test_teachers_do_not_read_the_log(staff):
    assert staff("aigul").get("/log/").status_code == 403
    assert staff("aigul").get("/log/export.csv").status_code == 403
