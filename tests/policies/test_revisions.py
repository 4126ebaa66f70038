"""Revisions (every change records the council decision it implements) and teachers' sessions."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.orm import Session, sessionmaker

from conftest import LESSON, to_utc_naive
from policies.database import read_version, utcnow
from policies.decision import Action, CouncilDecision, Reason
from policies.demo import demo_policy_data
from policies.document import render_document
from policies.engine import Engine
from policies.errors import KalkanError, NotFound, PolicyError
from policies.models import SessionMode
from policies.revisions import (
    diff_revisions,
    export_policy,
    get_revision,
    history,
    import_policy,
    latest_revision,
    rollback,
)
from policies.sessions import close_session, extend_session, list_sessions, open_session

LAB1_PC = "10.10.1.101"  # demo device lab1-pc01: middle school, session-bound
DEMO = CouncilDecision("1", "2026-08-28")


def demo_with(*, middle_block=(), everyone_block=()) -> str:
    """The demo policy with some more blocked sites."""
    data = demo_policy_data()
    middle = next(g for g in data["groups"] if g["id"] == "middle")
    middle["sites"]["block"] += list(middle_block)
    data["sites"]["block"] += list(everyone_block)
    return render_document(data)


def apply(sessions: sessionmaker[Session], text: str, protocol: str, date: str,
          author: str = "council", comment: str = ""):
    with sessions() as db:
        return import_policy(db, text, file="policy.yaml", author=author, comment=comment,
                             decision=CouncilDecision(protocol, date))


def state(sessions: sessionmaker[Session]) -> tuple[str, int, int]:
    """What must not move when a change is refused: the policy, its revision, the version."""
    with sessions() as db:
        return export_policy(db), latest_revision(db).id, read_version(db)


# --- revisions --------------------------------------------------------------------------------

def test_an_import_is_a_revision_with_its_council_decision_and_diff(demo):
    started = utcnow()
    result = apply(demo, demo_with(middle_block=["news.example.org"]), "7", "2026-10-01",
                   author="aigul", comment="news sites distract in lessons")
    assert result.changed is True
    with demo() as db:
        rev = get_revision(db, result.revision.id)
        assert rev.id == 2
        assert (rev.author, rev.protocol, rev.decision_date, rev.comment) == (
            "aigul", "7", dt.date(2026, 10, 1), "news sites distract in lessons")
        assert started - dt.timedelta(seconds=1) <= rev.created_at <= utcnow()
        assert rev.document == export_policy(db)
    assert rev.diff.startswith("--- revision 1\n+++ revision 2\n")
    added = [line for line in rev.diff.splitlines() if line.startswith("+ ")]
    assert added == ["+        - news.example.org"]
    assert not [line for line in rev.diff.splitlines() if line.startswith("- ")]


def test_history_lists_the_revisions_in_order(demo):
    apply(demo, demo_with(middle_block=["a.example"]), "7", "2026-10-01")
    apply(demo, demo_with(middle_block=["a.example", "b.example"]), "8", "2026-10-20")
    with demo() as db:
        revisions = history(db)
    assert [(r.id, r.protocol) for r in revisions] == [(1, "1"), (2, "7"), (3, "8")]
    assert revisions[0].diff.startswith("--- empty\n+++ revision 1\n")


def test_diff_between_two_revisions_shows_the_changed_line(demo):
    apply(demo, demo_with(everyone_block=["casino.example"]), "7", "2026-10-01")
    with demo() as db:
        text = diff_revisions(db, 1, 2)
        assert diff_revisions(db, 2, 2) == ""
        back = diff_revisions(db, 2, 1)
    assert text.startswith("--- revision 1\n+++ revision 2\n")
    assert "\n+    - casino.example\n" in text
    assert "\n-    - casino.example\n" in back


def test_rollback_is_a_new_revision_with_the_old_policy(demo):
    apply(demo, demo_with(middle_block=["a.example"]), "7", "2026-10-01")
    with demo() as db:
        first = get_revision(db, 1).document
        result = rollback(db, 1, decision=CouncilDecision("9", "2026-11-02"), author="council")
    assert result.revision.id == 3 and result.changed is True
    with demo() as db:
        assert export_policy(db) == first
        assert [r.id for r in history(db)] == [1, 2, 3]
        rev = get_revision(db, 3)
        assert rev.comment.startswith("rollback to revision 1")
        assert rev.protocol == "9"
        assert "\n-        - a.example\n" in rev.diff


def test_an_unknown_revision_is_not_found_with_a_hint(demo):
    with demo() as db:
        with pytest.raises(NotFound) as caught:
            rollback(db, 42, decision=CouncilDecision("9", "2026-11-02"), author="council")
        assert "no policy revision 42" in caught.value.message
        assert "kalkan policy history" in caught.value.hint
        with pytest.raises(NotFound):
            diff_revisions(db, 1, 42)
    assert [r.id for r in history_of(demo)] == [1]


def history_of(sessions: sessionmaker[Session]):
    with sessions() as db:
        return history(db)


@pytest.mark.parametrize(("protocol", "date", "words"), [
    ("", "2026-10-01", "protocol number is empty"),
    ("   ", "2026-10-01", "protocol number is empty"),
    ("7", "01.10.2026", "YYYY-MM-DD"),
    ("7", "2026-13-01", "YYYY-MM-DD"),
    ("7", "", "YYYY-MM-DD"),
])
def test_a_change_without_a_proper_council_decision_is_refused(demo, protocol, date, words):
    before = state(demo)
    with pytest.raises(PolicyError) as caught:
        apply(demo, demo_with(middle_block=["a.example"]), protocol, date)
    assert words in str(caught.value)
    assert state(demo) == before


def test_a_document_that_drops_a_group_a_class_is_in_changes_nothing(demo):
    data = demo_policy_data()
    data["groups"] = [g for g in data["groups"] if g["id"] != "primary"]
    before = state(demo)
    with demo() as db:
        with pytest.raises(PolicyError) as caught:
            import_policy(db, render_document(data), file="p.yaml", decision=DEMO,
                          author="council")
        assert "group 'primary' is still used by class '1A'" in str(caught.value)
        assert caught.value.hint
        # The same session goes on working: nothing half-applied is left in it to commit.
        assert export_policy(db) == before[0]
        db.commit()
    assert state(demo) == before


def test_importing_the_same_document_again_changes_nothing_but_is_recorded(demo):
    text = state(demo)[0]
    result = apply(demo, text, "7", "2026-10-01")
    assert result.changed is False
    assert result.revision.diff == ""
    assert state(demo)[0] == text


def test_every_import_bumps_the_state_version(demo):
    versions = [state(demo)[2]]
    for i in range(3):
        apply(demo, demo_with(middle_block=[f"s{i}.example"]), str(7 + i), "2026-10-01")
        versions.append(state(demo)[2])
    apply(demo, state(demo)[0], "10", "2026-10-02")  # unchanged: still a new revision
    versions.append(state(demo)[2])
    assert versions == sorted(set(versions)) and len(versions) == 5


def test_a_rule_keeps_the_council_decision_that_introduced_it(demo):
    lesson(demo)
    engine = Engine.from_database(demo, default_group="guests")
    apply(demo, demo_with(middle_block=["news.example.org"]), "7", "2026-10-01")
    apply(demo, demo_with(middle_block=["news.example.org", "chess.example"]), "8",
          "2026-10-20")

    engine.refresh()
    old = engine.decide(LAB1_PC, "roblox.com", None, LESSON)  # site rule of revision 1
    assert (old.reason, old.revision, old.council) == (Reason.SITE_LIST, 1, DEMO)
    chat = engine.decide(LAB1_PC, "discord.com", None, LESSON)  # category rule of revision 1
    assert (chat.reason, chat.revision, chat.council) == (Reason.CATEGORY, 1, DEMO)
    kept = engine.decide(LAB1_PC, "news.example.org", None, LESSON)
    assert (kept.action, kept.revision, kept.council) == (
        Action.BLOCK, 2, CouncilDecision("7", "2026-10-01"))
    new = engine.decide(LAB1_PC, "chess.example", None, LESSON)
    assert (new.action, new.revision, new.council) == (
        Action.BLOCK, 3, CouncilDecision("8", "2026-10-20"))
    assert "protocol No 8 of 2026-10-20" in new.explain()


# --- teachers' sessions -----------------------------------------------------------------------

def lesson(demo: sessionmaker[Session], **kwargs):
    """A 45-minute session in lab 1 that started five minutes before LESSON."""
    kwargs.setdefault("room", "lab1")
    kwargs.setdefault("teacher", "aigul")
    kwargs.setdefault("class_id", "7B")
    kwargs.setdefault("starts_at", to_utc_naive(LESSON - dt.timedelta(minutes=5)))
    with demo() as db:
        return open_session(db, minutes=kwargs.pop("minutes", 45), **kwargs)


def test_a_session_for_a_room_that_does_not_exist_names_the_rooms(demo):
    before = state(demo)
    with pytest.raises(NotFound) as caught:
        lesson(demo, room="lab9")
    assert "there is no room 'lab9'" in caught.value.message
    assert caught.value.hint == "rooms are: lab1, lab2, library, staffroom"
    assert state(demo) == before


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"teacher": "nobody"}, "there is no teacher 'nobody'"),
    ({"class_id": "7Z"}, "there is no class '7Z'"),
    ({"minutes": 0}, "between 1 and 720 minutes"),
    ({"minutes": 10000}, "between 1 and 720 minutes"),
    ({"mode": SessionMode.FOCUS}, "--focus"),
    ({"focus": ["bad..domain"]}, "focus site"),
])
def test_a_session_that_cannot_be_is_refused(demo, kwargs, words):
    before = state(demo)
    with pytest.raises(KalkanError) as caught:
        lesson(demo, **kwargs)
    assert words in str(caught.value)
    assert caught.value.hint
    assert state(demo) == before
    with demo() as db:
        assert list_sessions(db, include_past=True) == []


def test_an_unknown_class_lists_the_classes(demo):
    with pytest.raises(NotFound) as caught:
        lesson(demo, class_id="7Z")
    assert caught.value.hint.startswith("classes are: 1A, 2A, 3A")


def test_two_sessions_may_not_overlap_in_one_room(demo):
    first = lesson(demo)
    with pytest.raises(KalkanError) as caught:
        lesson(demo, teacher="bakyt", class_id="10A",
               starts_at=to_utc_naive(LESSON + dt.timedelta(minutes=20)))
    assert f"already has session #{first.id}" in caught.value.message
    assert "close or extend" in caught.value.hint
    lesson(demo, room="lab2", teacher="bakyt", class_id="10A")  # another room is free
    lesson(demo, starts_at=first.ends_at)  # and lab 1 after the first one ends
    lesson(demo, room="library", seats=["1"])  # seats of a room may have their own sessions
    lesson(demo, room="library", seats=["2"], class_id="3A")
    with pytest.raises(KalkanError):
        lesson(demo, room="library", seats=["2", "3"])


def test_a_session_is_extended_and_closed(demo):
    version = state(demo)[2]
    with demo() as db:
        s = open_session(db, room="lab1", teacher="aigul", class_id="7B", minutes=45)
        ends = s.ends_at
        assert [x.id for x in list_sessions(db)] == [s.id]
        extended = extend_session(db, s.id, 15)
        assert extended.ends_at == ends + dt.timedelta(minutes=15)
        with pytest.raises(KalkanError):
            extend_session(db, s.id, 0)
        closed = close_session(db, s.id)
        assert closed.closed_at is not None and closed.ends_at <= utcnow()
        assert list_sessions(db) == []
        assert [x.id for x in list_sessions(db, include_past=True)] == [s.id]
    assert state(demo)[2] == version + 3  # open, extend, close: each seen by the gateway


def test_closing_a_closed_session_says_it_has_ended(demo):
    with demo() as db:
        s = open_session(db, room="lab1", teacher="aigul", minutes=45)
        close_session(db, s.id)
        with pytest.raises(KalkanError) as caught:
            close_session(db, s.id)
        assert caught.value.message == f"session #{s.id} has already ended"
        assert "kalkan session open" in caught.value.hint
        with pytest.raises(KalkanError):
            extend_session(db, s.id, 10)
        with pytest.raises(NotFound) as missing:
            close_session(db, 999)
        assert "kalkan session list" in missing.value.hint


def test_a_session_cannot_be_extended_into_the_next_one(demo):
    first = lesson(demo, minutes=40)
    later = lesson(demo, teacher="bakyt", class_id="10A", starts_at=first.ends_at)
    with demo() as db:
        with pytest.raises(KalkanError) as caught:
            extend_session(db, first.id, 10)
        assert f"already has session #{later.id}" in caught.value.message
    with demo() as db:
        assert [s.ends_at for s in list_sessions(db, include_past=True)] == [
            first.ends_at, later.ends_at]
