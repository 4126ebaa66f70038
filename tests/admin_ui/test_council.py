"""The council's pages: every save is a revision with the council decision, through the same
import as `kalkan policy import`; history, rollback, YAML export and import; "what would
happen" for a group."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from admin_ui.models import AuditAction, AuditEntry
from conftest import LESSON
from policies.engine import Engine
from policies.revisions import export_policy, history

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff

DECISION = {"protocol": "7", "decision_date": "2026-10-01", "comment": "video for seniors"}
STAFFROOM = "10.10.9.20"  # the teachers group: staff, not session-bound, 07:00–21:00


def revisions(school) -> list:
    with school() as db:
        return history(db)


def decide(school, client: str, host: str):
    return Engine.from_database(school, default_group="guests").decide(client, host, at=LESSON)


@pytest.fixture
def council(staff):
    return staff("council")


def test_the_matrix_locks_mandatory_categories_for_students(council):
    html = council.page("/council/", lang="en")
    assert 'name="cell|senior|video"' in html
    assert 'name="cell|middle|adult"' not in html  # no control: it cannot be changed
    assert "blocked: regulation 3.3" in html
    assert 'name="cell|teachers|adult"' in html  # staff groups are the council's to decide
    assert "Pornography" in html and "Порнография" in council.page("/council/", lang="ru")


def test_saving_the_matrix_makes_a_revision_with_the_council_decision(council, school):
    assert decide(school, STAFFROOM, "facebook.com").blocked is False
    response = council.post("/council/", {"cell|teachers|social": "block", **DECISION,
                                          "base_revision": "1"})
    assert response.status_code == 302 and response.location == "/council/"
    revs = revisions(school)
    assert [r.id for r in revs] == [1, 2]
    assert (revs[1].protocol, str(revs[1].decision_date), revs[1].author) == (
        "7", "2026-10-01", "council")
    assert "+        - social" in revs[1].diff
    decision = decide(school, STAFFROOM, "facebook.com")
    assert decision.blocked and decision.category == "social"
    assert "protocol No 7 of 2026-10-01" in decision.explain()
    with school() as db:
        entry = db.scalar(select(AuditEntry).where(
            AuditEntry.action == AuditAction.POLICY_SAVED.value))
        assert (entry.actor, entry.target, entry.detail["protocol"]) == (
            "council", "revision 2", "7")


def test_a_save_without_a_council_decision_keeps_the_edit_and_makes_nothing(council, school):
    response = council.post("/council/?lang=en", {"cell|teachers|social": "block",
                                                  "base_revision": "1"})
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Give the council decision: its protocol number and date." in html
    assert '<select class="cell block" name="cell|teachers|social"' in html  # the edit is kept
    assert len(revisions(school)) == 1


def test_a_mandatory_category_cannot_be_allowed_even_by_a_forged_form(council, school):
    response = council.post("/council/", {"cell|middle|adult": "allow", **DECISION})
    assert response.status_code == 400
    assert "regulation 3.3" in response.get_data(as_text=True)
    assert len(revisions(school)) == 1


def test_a_save_over_a_newer_revision_is_refused(council, staff, school):
    admin = staff("admin")
    assert admin.post("/council/sites", allow="school1.edu.kg", block="1xbet.com\nbad.example",
                      base_revision="1", **DECISION).status_code == 302
    response = council.post("/council/", {"cell|teachers|social": "block", **DECISION,
                                          "base_revision": "1"})
    assert response.status_code == 400
    assert "was saved after this page was opened" in response.get_data(as_text=True)
    assert len(revisions(school)) == 2


def test_saving_nothing_new_makes_no_revision(council, school):
    response = council.post("/council/", {"cell|senior|video": "allow", **DECISION})
    assert response.status_code == 302
    assert len(revisions(school)) == 1


def test_a_group_page_saves_settings_lists_and_schedule(council, school):
    html = council.page("/council/groups/middle", lang="en")
    assert "roblox.com" in html and "mon-fri 08:00-17:00" in html
    response = council.post("/council/groups/middle", mode="blocklist", youtube="strict",
                            safe_search="on", session_required="on", allow="lib.kg",
                            block="roblox.com\nsteampowered.com\nTikTok.com",
                            schedule="mon-fri 8:00-16:00\nsat 09:00 - 12:00", **DECISION)
    assert response.status_code == 302
    with school() as db:
        text = export_policy(db)
    assert "      - tiktok.com" in text and 'from: "08:00"' in text and 'to: "12:00"' in text


def test_a_bad_schedule_line_is_refused_with_its_line(council, school):
    response = council.post("/council/groups/middle", mode="blocklist", youtube="off",
                            schedule="mon-fri 08:00-17:00\nevery day", **DECISION)
    assert response.status_code == 400
    assert "line 2: &#39;every day&#39; is not a schedule window" in response.get_data(
        as_text=True)
    assert len(revisions(school)) == 1


def test_site_names_are_validated_and_escaped(council, school):
    response = council.post("/council/sites", allow="", block="<script>alert(1)</script>",
                            **DECISION)
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert len(revisions(school)) == 1


def test_history_reads_in_words_and_a_rollback_is_a_new_revision(council, school):
    council.post("/council/", {"cell|senior|video": "block", **DECISION})
    council.post("/council/sites", allow="school1.edu.kg\nkitep.kg", block="1xbet.com",
                 **{**DECISION, "protocol": "8"})
    html = council.page("/council/history/2", lang="en")
    assert "<code>senior</code>: category <code>video</code>: allow → block" in html
    html = council.page("/council/history/3", lang="en")
    assert "every group: kitep.kg added to the allowed sites" in html
    assert council.page("/council/history/3", lang="ru").count("kitep.kg") >= 1
    response = council.post("/council/history/1/rollback", protocol="9",
                            decision_date="2026-10-20")
    assert response.status_code == 302
    revs = revisions(school)
    assert revs[-1].id == 4 and revs[-1].comment == "rollback to revision 1"
    assert revs[-1].document == revs[0].document
    assert "protocol No 9" in council.page("/council/history", lang="en")


def test_export_and_import_round_trip(council, school):
    response = council.get("/council/export")
    assert response.mimetype == "application/yaml"
    assert "kalkan-policy-r1.yaml" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    with school() as db:
        assert text == export_policy(db)
    changed = text.replace("  block:\n    - 1xbet.com\n", "  block:\n    - 1xbet.com\n"
                           "    - casino.example\n")
    assert changed != text
    response = council.client.post("/council/import", data={
        "csrf_token": council.token(), "file": (__import__("io").BytesIO(changed.encode()),
                                                "policy.yaml"), **DECISION})
    assert response.status_code == 302
    assert "casino.example" in revisions(school)[-1].document


def test_an_import_or_rollback_without_a_council_decision_is_refused(council, school):
    with school() as db:
        text = export_policy(db).replace("    - 1xbet.com\n", "    - 1xbet.com\n    - x.example\n")
    response = council.post("/council/import?lang=en", text=text)
    assert response.status_code == 400
    assert "Give the council decision" in response.get_data(as_text=True)
    council.post("/council/", {"cell|senior|video": "block", **DECISION})
    council.post("/council/history/1/rollback?lang=en")
    assert len(revisions(school)) == 2


def test_a_broken_import_names_the_file_and_line_and_changes_nothing(council, school):
    response = council.post("/council/import", text="kalkan_policy: 1\ngroups:\n  - id: x\n"
                            "    nme: y\n", **DECISION)
    assert response.status_code == 400
    assert "pasted text:" in response.get_data(as_text=True)
    assert len(revisions(school)) == 1


def test_the_director_reads_but_cannot_change(staff):
    director = staff("director")
    html = director.page("/council/", lang="en")
    assert "<select" not in html.split("<main>")[1] and "Save as a new revision" not in html
    assert "disabled" in director.page("/council/groups/middle")
    assert director.post("/council/", {"cell|teachers|social": "block", **DECISION}
                         ).status_code == 403


def test_what_would_happen_for_a_group_during_a_lesson(council):
    html = council.page("/check", host="youtube.com", group="senior", at="2030-11-27T10:00",
                        lang="en")
    assert '<h2 class="allowed">Allowed</h2>' in html and "category video" in html
    html = council.page("/check", host="facebook.com", group="middle", at="2030-11-27T10:00",
                        lang="en")
    assert '<h2 class="blocked">Blocked</h2>' in html
    assert "Session: #0" not in html and "10.10." not in html.split("<pre>")[1]
    html = council.page("/check", host="youtube.com", group="senior", at="2030-11-27T22:00",
                        lang="en")
    assert "schedule" in html.split("<pre>")[1]
    html = council.page("/check", host="lib.kg", group="no-such", lang="en")
    assert "is unknown" in html
