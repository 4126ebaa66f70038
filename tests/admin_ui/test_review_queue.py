"""The review and report queue: what the block page stored reaches the council's queue, and is
dismissed with a reason or turned into a site-list change with a council decision."""

from __future__ import annotations

import yaml
from sqlalchemy import select

from admin_ui.models import AuditEntry
from conftest import LESSON
from gateway.proxy.site_requests import SiteRequestDraft, store_site_request
from policies.engine import Engine
from policies.models import RequestKind, SiteRequest
from policies.revisions import history

pytest_plugins = ["tests.admin_ui.admin_client",  # fixtures: school, app, staff
                  "tests.admin_ui.people_client"]  # english, admin

DECISION = {"protocol": "31", "decision_date": "2026-11-24"}
STAFFROOM = "10.10.9.20"  # teachers: not session-bound; youtube.com is allowed there


def ask(school, kind: RequestKind, host: str, client: str = "10.10.1.101",
        message: str = "", group: str = "middle") -> int:
    draft = SiteRequestDraft(kind=kind, client=client, host=host, room="lab1", group=group,
                             message=message, category=None)
    return store_site_request(school, draft)[0]


def decide(school, client: str, host: str):
    return Engine.from_database(school, default_group="guests").decide(client, host, at=LESSON)


def test_a_report_becomes_a_block_for_everyone_with_the_council_decision(admin, school):
    assert decide(school, STAFFROOM, "slipped.example").blocked is False
    first = ask(school, RequestKind.REPORT, "slipped.example", message="<img src=x onerror=1>")
    second = ask(school, RequestKind.REPORT, "slipped.example", client="10.10.1.102")
    html = admin.page("/queue/")
    assert "slipped.example" in html and "Open: 2" in html
    assert "&lt;img src=x onerror=1&gt;" in html and "<img src=x" not in html
    assert html.count('name="protocol"') == 2  # each open request asks for the decision

    response = admin.post(f"/queue/{first}", outcome="block", **DECISION)
    assert response.status_code == 302, response.get_data(as_text=True)
    decision = decide(school, STAFFROOM, "slipped.example")
    assert decision.blocked and "protocol No 31 of 2026-11-24" in decision.explain()
    with school() as db:
        rows = db.scalars(select(SiteRequest).where(SiteRequest.id.in_([first, second]))).all()
        latest = history(db)[-1]
        audit = db.scalars(select(AuditEntry).where(AuditEntry.action == "request_resolved")).all()
    assert {r.status for r in rows} == {"resolved"}  # both reports of the site are answered
    assert {r.decided_by for r in rows} == {"admin"}
    assert all(f"revision {latest.id}" in r.answer for r in rows)
    assert audit[0].detail["revision"] == latest.id and audit[0].target == "slipped.example"
    assert "Open: 0" in admin.page("/queue/")
    assert "resolved" in admin.page("/queue/", show="all")


def test_a_review_allows_the_site_for_one_group_only(admin, school):
    assert decide(school, STAFFROOM, "melbet.com").reason == "category"  # gambling: blocked
    rid = ask(school, RequestKind.REVIEW, "melbet.com", client=STAFFROOM, group="teachers",
              message="a lesson on advertising")
    assert admin.post(f"/queue/{rid}", outcome="allow", group="teachers",
                      **DECISION).status_code == 302
    decision = decide(school, STAFFROOM, "melbet.com")
    assert decision.blocked is False and decision.reason == "site_list"
    with school() as db:  # no other group gets it
        guests = [g for g in yaml.safe_load(history(db)[-1].document)["groups"]
                  if g["id"] != "teachers"]
    assert all("melbet.com" not in g["sites"]["allow"] for g in guests)


def test_a_change_without_a_decision_is_refused_and_the_request_stays_open(admin, school):
    rid = ask(school, RequestKind.REPORT, "slipped.example")
    response = admin.post(f"/queue/{rid}", outcome="block")
    assert response.status_code == 400
    assert "protocol number and date" in response.get_data(as_text=True)
    with school() as db:
        assert db.get(SiteRequest, rid).status == "open"
    assert decide(school, STAFFROOM, "slipped.example").blocked is False


def test_dismissing_needs_a_reason_and_changes_no_policy(admin, school):
    rid = ask(school, RequestKind.REVIEW, "pokerstars.com")
    with school() as db:
        revisions = len(history(db))
    assert admin.post(f"/queue/{rid}", outcome="dismiss").status_code == 400
    assert admin.post(f"/queue/{rid}", outcome="dismiss",
                      answer="gambling stays blocked").status_code == 302
    with school() as db:
        row = db.get(SiteRequest, rid)
        assert (row.status, row.answer, row.decided_by) == (
            "refused", "gambling stays blocked", "admin")
        assert len(history(db)) == revisions
    # Answered once: a second answer is refused, the first stays.
    admin.post(f"/queue/{rid}", outcome="block", **DECISION)
    with school() as db:
        assert db.get(SiteRequest, rid).status == "refused"


def test_lesson_requests_are_not_in_the_queue_and_the_director_only_reads(english, staff,
                                                                          school):
    ask(school, RequestKind.LESSON, "wikipedia.org")
    rid = ask(school, RequestKind.REPORT, "bad.example")
    director = staff("director")
    html = director.page("/queue/")
    assert "bad.example" in html and "wikipedia.org" not in html
    assert "Change the site lists" not in html
    assert director.post(f"/queue/{rid}", outcome="dismiss", answer="x").status_code == 403
