"""The decision engine, pinned by tests that read like the school's ICT regulations."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from sqlalchemy.orm import Session, sessionmaker

from conftest import LESSON, to_utc_naive
from policies.decision import Action, CouncilDecision, Reason
from policies.demo import demo_policy_data
from policies.document import render_document
from policies.engine import Engine
from policies.models import SessionMode
from policies.revisions import import_policy
from policies.sessions import close_session, open_session

LAB1_PC = "10.10.1.101"  # a student PC in computer lab 1 (demo device lab1-pc01, seat 1)
LAB1_PC2 = "10.10.1.102"
LAB1_OTHER = "10.10.1.150"  # an unregistered PC in lab 1
LAB1_TEACHER_PC = "10.10.1.10"  # pinned to the teachers group
STAFFROOM = "10.10.9.20"
UNKNOWN = "192.168.77.5"  # no room claims it


def lesson(demo: sessionmaker[Session], room: str = "lab1", class_id: str = "7B",
           **kwargs) -> int:
    """Open a 45-minute session that started five minutes before LESSON."""
    with demo() as db:
        s = open_session(db, room=room, teacher="aigul", class_id=class_id, minutes=45,
                         starts_at=to_utc_naive(LESSON - dt.timedelta(minutes=5)), **kwargs)
        return s.id


def decide(engine: Engine, client: str, host: str, at: dt.datetime = LESSON, url=None):
    engine.refresh()
    return engine.decide(client, host, url, at)


# Regulation 2.9: students are never online without a supervising teacher.

def test_students_in_a_lab_without_a_session_are_blocked_with_reason_no_session(engine):
    d = decide(engine, LAB1_PC, "bilimland.kz")
    assert d.action is Action.BLOCK
    assert d.reason is Reason.NO_SESSION
    assert d.room == "lab1" and d.group == "middle"
    assert "regulation 2.9" in d.explain()


def test_with_a_session_students_reach_education_sites(demo, engine):
    sid = lesson(demo)
    d = decide(engine, LAB1_PC, "www.bilimland.kz")
    assert d.action is Action.ALLOW
    assert d.reason is Reason.CATEGORY and d.category == "education"
    assert d.session == sid
    assert d.council == CouncilDecision("1", "2026-08-28")


def test_a_session_applies_the_policy_of_the_class_that_came_to_the_room(demo, engine):
    lesson(demo, class_id="3A")  # primary pupils in the middle-school lab: education only
    assert decide(engine, LAB1_PC, "lib.kg").action is Action.ALLOW
    d = decide(engine, LAB1_PC, "news.example.org")
    assert (d.action, d.reason, d.group) == (Action.BLOCK, Reason.GROUP_DEFAULT, "primary")


def test_closing_the_session_blocks_again(demo, engine):
    sid = lesson(demo)
    assert decide(engine, LAB1_PC, "lib.kg").action is Action.ALLOW
    with demo() as db:
        close_session(db, sid)
    now = dt.datetime.now(dt.UTC)
    assert decide(engine, LAB1_PC, "lib.kg", at=now).reason in (Reason.NO_SESSION,
                                                                 Reason.OUTSIDE_SCHEDULE)


def test_a_session_ends_by_itself(demo, engine):
    lesson(demo)
    d = decide(engine, LAB1_PC, "lib.kg", at=LESSON + dt.timedelta(minutes=41))
    assert d.reason is Reason.NO_SESSION


def test_a_session_for_some_seats_leaves_the_other_seats_closed(demo, engine):
    lesson(demo, seats=["1"])
    assert decide(engine, LAB1_PC, "lib.kg").action is Action.ALLOW
    assert decide(engine, LAB1_PC2, "lib.kg").reason is Reason.NO_SESSION


def test_a_focus_session_allows_only_its_list(demo, engine):
    lesson(demo, mode=SessionMode.FOCUS, focus=["daryn.online", "lib.kg/books"])
    d = decide(engine, LAB1_PC, "olympiad.daryn.online")
    assert (d.action, d.reason) == (Action.ALLOW, Reason.SESSION_MODE)
    assert decide(engine, LAB1_PC, "lib.kg", url="https://lib.kg/books/7").action is Action.ALLOW
    d = decide(engine, LAB1_PC, "bilimland.kz")  # allowed by the group, not on the focus list
    assert (d.action, d.reason) == (Action.BLOCK, Reason.SESSION_MODE)
    assert "focus" in d.explain()
    assert decide(engine, LAB1_PC, "lib.kg", url="https://lib.kg/news").blocked


def test_a_closed_session_blocks_everything(demo, engine):
    lesson(demo, mode=SessionMode.CLOSED)
    d = decide(engine, LAB1_PC, "lib.kg")
    assert (d.action, d.reason) == (Action.BLOCK, Reason.SESSION_MODE)


# Regulation 2.10: teachers may use the internet without the responsible person.

def test_teachers_are_not_session_bound(engine):
    d = decide(engine, STAFFROOM, "news.example.org")
    assert (d.action, d.group) == (Action.ALLOW, "teachers")


def test_the_teachers_pc_in_a_lab_is_pinned_to_the_teachers_group(engine):
    d = decide(engine, LAB1_TEACHER_PC, "facebook.com")
    assert (d.action, d.group, d.device) == (Action.ALLOW, "teachers", "lab1-teacher")


# Regulation 3.3: students are barred from the mandatory categories, whatever the rules say.

def test_a_mandatory_category_is_blocked_for_students_even_on_an_allow_list(demo, engine):
    data = demo_policy_data()
    middle = next(g for g in data["groups"] if g["id"] == "middle")
    middle["sites"]["allow"].append("pornhub.com")  # a careless allow-list entry
    with demo() as db:
        import_policy(db, render_document(data), file="t.yaml",
                      decision=CouncilDecision("2", "2026-09-10"), author="test")
    lesson(demo)
    d = decide(engine, LAB1_PC, "www.pornhub.com")
    assert (d.action, d.reason, d.category) == (Action.BLOCK, Reason.MANDATORY_CATEGORY, "adult")
    assert "regulation 3.3" in d.explain()


def test_a_mandatory_category_beats_a_focus_session(demo, engine):
    lesson(demo, mode=SessionMode.FOCUS, focus=["xvideos.com"])
    assert decide(engine, LAB1_PC, "xvideos.com").reason is Reason.MANDATORY_CATEGORY


# Regulation 2.1 and 2.5: the internet is used on a schedule.

def test_outside_the_schedule_is_blocked_with_reason_schedule(demo, engine):
    lesson(demo)
    sunday = dt.datetime(2026, 11, 29, 10, 0, tzinfo=LESSON.tzinfo)
    d = decide(engine, STAFFROOM, "lib.kg", at=sunday)  # teachers: mon-sat 07:00-21:00
    assert (d.action, d.reason) == (Action.BLOCK, Reason.OUTSIDE_SCHEDULE)
    assert "mon" in d.explain()
    late = LESSON.replace(hour=22)
    assert decide(engine, STAFFROOM, "lib.kg", at=late).reason is Reason.OUTSIDE_SCHEDULE
    last_minute = LESSON.replace(hour=20, minute=59)
    assert decide(engine, STAFFROOM, "lib.kg", at=last_minute).action is Action.ALLOW


def test_the_schedule_is_read_in_the_schools_time_zone(engine):
    # 06:30 in Bishkek is 00:30 UTC: before the teachers' 07:00 start.
    early = dt.datetime(2030, 11, 27, 0, 30, tzinfo=dt.UTC)
    assert decide(engine, STAFFROOM, "lib.kg", at=early).reason is Reason.OUTSIDE_SCHEDULE
    assert decide(engine, STAFFROOM, "lib.kg", at=early + dt.timedelta(hours=1)).action \
        is Action.ALLOW


# Site lists: the most specific entry wins; block beats allow at the same specificity.

def _with_sites(demo, *, allow=(), block=(), group_allow=(), group_block=()):
    data = demo_policy_data()
    data["sites"]["allow"] += list(allow)
    data["sites"]["block"] += list(block)
    middle = next(g for g in data["groups"] if g["id"] == "middle")
    middle["sites"]["allow"] += list(group_allow)
    middle["sites"]["block"] += list(group_block)
    with demo() as db:
        return import_policy(db, render_document(data), file="t.yaml",
                             decision=CouncilDecision("7", "2026-10-01"), author="t").revision.id


def test_the_most_specific_site_list_entry_wins(demo, engine):
    rev = _with_sites(demo, block=["example.org"], group_allow=["maps.example.org"])
    lesson(demo)
    d = decide(engine, LAB1_PC, "maps.example.org")
    assert (d.action, d.reason, d.matched) == (Action.ALLOW, Reason.SITE_LIST, "maps.example.org")
    d = decide(engine, LAB1_PC, "www.example.org")
    assert (d.action, d.matched) == (Action.BLOCK, "example.org")
    assert d.council == CouncilDecision("7", "2026-10-01") and d.revision == rev


def test_block_beats_allow_at_the_same_specificity(demo, engine):
    _with_sites(demo, allow=["games.example"], group_block=["games.example"])
    lesson(demo)
    d = decide(engine, LAB1_PC, "games.example")
    assert (d.action, d.reason) == (Action.BLOCK, Reason.SITE_LIST)


def test_a_site_list_allow_beats_a_blocked_category(demo, engine):
    _with_sites(demo, group_allow=["vk.com"])  # social is blocked for middle
    lesson(demo)
    assert decide(engine, LAB1_PC, "vk.com").action is Action.ALLOW
    assert decide(engine, LAB1_PC, "facebook.com").reason is Reason.CATEGORY


def test_url_entries_are_more_specific_than_their_domain(demo, engine):
    lesson(demo, room="lab2", class_id="10A")  # senior: social allowed by default, vk.com/edu
    _with_sites(demo, block=["vk.com"])
    d = decide(engine, "10.10.2.5", "vk.com", url="https://vk.com/edu/physics")
    assert (d.action, d.matched) == (Action.ALLOW, "vk.com/edu")
    assert decide(engine, "10.10.2.5", "vk.com", url="https://vk.com/feed").blocked


# Categories and the group's mode.

def test_a_blocked_category_is_blocked_with_the_council_decision(demo, engine):
    lesson(demo)
    d = decide(engine, LAB1_PC, "www.roblox.com")
    assert d.blocked and d.reason in (Reason.SITE_LIST, Reason.CATEGORY)
    d = decide(engine, LAB1_PC, "discord.com")
    assert (d.reason, d.category) == (Reason.CATEGORY, "chat")
    assert "protocol No 1 of 2026-08-28" in d.explain()


def test_blocklist_mode_allows_what_no_rule_names(demo, engine):
    lesson(demo)
    d = decide(engine, LAB1_PC, "news.example.org")
    assert (d.action, d.reason) == (Action.ALLOW, Reason.GROUP_DEFAULT)


# Clients the policy does not know.

def test_an_unknown_client_falls_to_the_configured_default_group(demo):
    engine = Engine.from_database(demo, default_group="guests")
    d = engine.decide(UNKNOWN, "lib.kg", at=LESSON)
    assert (d.action, d.group, d.room) == (Action.ALLOW, "guests", None)
    assert engine.decide(UNKNOWN, "news.example.org", at=LESSON).blocked  # guests: education only


def test_an_unregistered_pc_in_a_lab_gets_the_rooms_group(engine):
    d = decide(engine, LAB1_OTHER, "lib.kg")
    assert (d.group, d.room, d.reason) == ("middle", "lab1", Reason.NO_SESSION)


def test_ipv6_and_ipv4_mapped_clients_find_their_room(engine):
    assert decide(engine, "fd00:10:10:1::99", "lib.kg").room == "lab1"
    assert decide(engine, "::ffff:10.10.1.101", "lib.kg").device == "lab1-pc01"


def test_a_default_group_missing_from_the_policy_fails_closed(demo):
    engine = Engine.from_database(demo, default_group="nobody")
    d = engine.decide(UNKNOWN, "lib.kg", at=LESSON)
    assert d.blocked and "not in the policy" in d.explain()


def test_host_names_are_compared_as_dns_names(demo, engine):
    lesson(demo)
    assert decide(engine, LAB1_PC, "WWW.BilimLand.KZ.").action is Action.ALLOW


# Snapshots are swapped when the policy changes.

def test_a_saved_policy_change_is_seen_after_refresh(demo, engine):
    lesson(demo)
    assert decide(engine, LAB1_PC, "news.example.org").action is Action.ALLOW
    before = engine.snapshot
    _with_sites(demo, block=["news.example.org"])
    assert engine.refresh() is True and engine.snapshot is not before
    assert engine.decide(LAB1_PC, "news.example.org", None, LESSON).blocked
    assert engine.refresh() is False  # nothing changed since


def test_the_watcher_enforces_a_change_within_two_seconds(demo, engine):
    import time

    lesson(demo)
    engine.watch(interval=0.2)
    try:
        _with_sites(demo, block=["quick.example"])
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if engine.decide(LAB1_PC, "quick.example", None, LESSON).blocked:
                break
            time.sleep(0.05)
        assert engine.decide(LAB1_PC, "quick.example", None, LESSON).blocked
    finally:
        engine.stop()


def test_a_lost_database_keeps_the_last_snapshot(demo, engine, sqlite_url):
    lesson(demo)
    engine.refresh()
    snap = engine.snapshot
    demo.kw["bind"].dispose()
    path = sqlite_url.removeprefix("sqlite:///")
    for suffix in ("", "-wal", "-shm"):  # the database file disappears under a running gateway
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    assert engine.refresh() is False
    assert engine.refresh(force=True) is False
    assert engine.snapshot is snap
    assert decide(engine, LAB1_PC, "lib.kg").action is Action.ALLOW


@pytest.mark.parametrize("host", ["", "   "])
def test_an_empty_host_is_blocked_not_crashed(engine, host):
    assert engine.decide(LAB1_PC, host, None, LESSON).blocked


# A student's request, approved by the teacher, opens one site for that session only.

def test_a_site_the_teacher_allowed_is_open_for_that_session_only(demo, engine):
    from policies.models import InternetSession

    sid = lesson(demo)
    with demo() as db:
        session = db.get(InternetSession, sid)
        session.allowed_sites = ["discord.com", "xvideos.com"]  # chat is blocked for middle
        from policies.database import bump_version

        bump_version(db)
        db.commit()
    d = decide(engine, LAB1_PC, "discord.com")
    assert (d.action, d.reason) == (Action.ALLOW, Reason.SESSION_MODE)
    assert "allowed by the teacher" in d.explain()
    # Never a mandatory category, whoever approved it (regulation 3.3).
    assert decide(engine, LAB1_PC, "xvideos.com").reason is Reason.MANDATORY_CATEGORY
    # Another room's students are not in that session.
    assert decide(engine, "10.10.2.5", "discord.com").reason is Reason.NO_SESSION
    # After the session, the site is blocked again.
    after = LESSON + dt.timedelta(minutes=41)
    assert decide(engine, LAB1_PC, "discord.com", at=after).blocked
