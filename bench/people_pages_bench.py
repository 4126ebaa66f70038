"""The responsible person's pages and the timetable opener, timed on the demo school with a full
week's timetable (160 lessons) and 100 open block-page reports:

    .venv/bin/python bench/people_pages_bench.py

Prints median and p95 of 30 requests per page (in-process test client, SQLite), the time to
resolve one report into a block (a new revision), and one opener round with and without
sessions to open. Not part of ``make test``; about 20 s.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from admin_ui.staff import give_demo_passwords
from gateway.proxy.site_requests import SiteRequestDraft, store_site_request
from policies.database import migrate, open_engine, session_factory
from policies.demo import seed_demo
from policies.models import RequestKind, StaffUser
from policies.timetable import Lesson, open_due_lessons
from tests.admin_ui.admin_client import FAST_HASH, Staff, make_app

PAGES = ("/rooms/", "/classes/", "/classes/7B/students/", "/timetable/", "/queue/",
         "/blocklists/", "/notifications/")
MONDAY_9_BISHKEK = dt.datetime(2026, 11, 23, 3, 0)  # naive UTC


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp}/kalkan.db"
    engine = open_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as db:
        seed_demo(db)
        give_demo_passwords(db, method=FAST_HASH)
        teacher = db.scalar(select(StaffUser.id).where(StaffUser.username == "aigul"))
        lessons = 0
        for day in range(5):
            for room in ("lab1", "lab2", "library", "staffroom"):
                for period in range(8):
                    start = 8 * 60 + period * 55
                    db.add(Lesson(weekday=day, start=f"{start // 60:02d}:{start % 60:02d}",
                                  end=f"{(start + 45) // 60:02d}:{(start + 45) % 60:02d}",
                                  class_id="7B", room_id=room, teacher_id=teacher,
                                  mode="normal", focus_sites=[]))
                    lessons += 1
        db.commit()
    for i in range(100):
        store_site_request(sessions, SiteRequestDraft(
            kind=RequestKind.REPORT, client=f"10.10.1.{i}", host=f"site{i}.example",
            room="lab1", group="middle"))
    admin = Staff(make_app(url, DATA_DIR=str(tmp / "data")).test_client())
    admin.sign_in("admin")
    for page in PAGES:
        times = []
        for _ in range(30):
            started = time.perf_counter()
            admin.page(page)
            times.append(time.perf_counter() - started)
        times.sort()
        print(f"{page:24s} median {statistics.median(times) * 1000:6.1f} ms   "
              f"p95 {times[int(0.95 * len(times)) - 1] * 1000:6.1f} ms")
    started = time.perf_counter()
    admin.post("/queue/1", outcome="block", protocol="5", decision_date="2026-11-24")
    print(f"resolve a report into a block (a new revision): "
          f"{(time.perf_counter() - started) * 1000:.0f} ms")
    with sessions() as db:
        started = time.perf_counter()
        opened = open_due_lessons(db, now=MONDAY_9_BISHKEK)
        print(f"opener round, {lessons} lessons, {len(opened)} sessions opened: "
              f"{(time.perf_counter() - started) * 1000:.1f} ms")
    rounds = []
    for _ in range(20):
        with sessions() as db:  # as the opener thread does: a new session each round
            started = time.perf_counter()
            open_due_lessons(db, now=MONDAY_9_BISHKEK + dt.timedelta(seconds=10))
            rounds.append(time.perf_counter() - started)
    print(f"opener round with nothing to open: median {statistics.median(rounds) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
