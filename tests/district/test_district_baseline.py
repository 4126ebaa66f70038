"""The district baseline as a school's council meets it: what it refuses, what the engine does
with it, and the saved policy a gateway falls back on when the district is away."""

from __future__ import annotations

import copy

import pytest
from sqlalchemy.orm import Session, sessionmaker

from district.baseline import parse_baseline, publish_baseline
from district.offline import DistrictPolicySource, open_district_engine, snapshot_path
from policies.database import open_engine, session_factory
from policies.decision import Action, CouncilDecision, Reason
from policies.defaults import default_policy_data
from policies.document import render_document
from policies.errors import KalkanError, MandatoryCategoryAllowed, PolicyError
from policies.revisions import import_policy, latest_revision

BASELINE = """kalkan_baseline: 1
district: Osh city
mandatory: [adult, violence, terrorism, extremism, hatred, gambling]
sites:
  extremism: [bad.example.kg]
"""
STUDENT_PC = "192.168.50.7"  # in no room: the default group, students


def _publish(sessions: sessionmaker[Session], text: str = BASELINE) -> None:
    with sessions() as db:
        publish_baseline(db, text, file="baseline.yaml", author="district",
                         decision=CouncilDecision("D-7", "2026-11-25"))


def _import(sessions: sessionmaker[Session], data: dict) -> None:
    with sessions() as db:
        import_policy(db, render_document(data), file="school.yaml", author="council",
                      decision=CouncilDecision("12", "2026-11-25"))


@pytest.fixture
def school(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    _import(sessions, default_policy_data())
    _publish(sessions)
    return sessions


def test_a_school_cannot_allow_a_category_the_district_made_mandatory(school):
    data = default_policy_data()
    students = data["groups"][0]
    students["categories"]["block"].remove("gambling")
    students["categories"]["allow"].append("gambling")
    with school() as db:
        before = latest_revision(db).id
    with pytest.raises(MandatoryCategoryAllowed) as refused:
        _import(school, data)
    assert "'gambling'" in str(refused.value)
    assert "district baseline (revision 1, decision D-7 of 2026-11-25)" in str(refused.value)
    with school() as db:
        assert latest_revision(db).id == before  # the running policy stays


def test_a_school_cannot_allow_a_site_on_the_district_list(school):
    data = default_policy_data()
    data["sites"]["allow"].append("news.bad.example.kg")
    with pytest.raises(MandatoryCategoryAllowed) as refused:
        _import(school, data)
    assert ("news.bad.example.kg may not be allowed for every group: the district baseline "
            "lists bad.example.kg in the mandatory category 'extremism'") in str(refused.value)


def test_a_school_may_tighten_the_baseline(school):
    data = copy.deepcopy(default_policy_data())
    data["groups"][1]["categories"]["block"].append("gambling")  # teachers too
    data["sites"]["block"].append("casino.example.kg")
    _import(school, data)


def test_the_baseline_is_enforced_for_students_whatever_the_school_lists(school, tmp_path):
    engine = open_district_engine(school, school_id="school", data_dir=tmp_path,
                                  default_group="students", categories=None)
    decision = engine.decide(STUDENT_PC, "www.bad.example.kg")
    assert decision.action is Action.BLOCK and decision.reason is Reason.MANDATORY_CATEGORY
    assert "district baseline r1" in decision.rule
    # A new baseline revision reaches the running engine on its next round.
    _publish(school, BASELINE.replace("[bad.example.kg]", "[bad.example.kg, worse.example.kg]"))
    assert engine.decide(STUDENT_PC, "worse.example.kg").action is Action.ALLOW
    assert engine.refresh()
    assert engine.decide(STUDENT_PC, "worse.example.kg").reason is Reason.MANDATORY_CATEGORY


def test_a_gateway_that_starts_without_its_database_filters_with_the_saved_policy(
        school, tmp_path):
    DistrictPolicySource(school, school_id="school", data_dir=tmp_path,
                         default_group="students", categories=None).compile()
    assert snapshot_path(tmp_path).exists()
    away = session_factory(open_engine(
        "postgresql+psycopg://kalkan@127.0.0.1:1/district?connect_timeout=1"))
    engine = open_district_engine(away, school_id="school", data_dir=tmp_path,
                                  default_group="students", categories=None)
    assert engine.decide(STUDENT_PC, "bad.example.kg").reason is Reason.MANDATORY_CATEGORY
    assert not engine.refresh()  # still away: the saved policy stays, quietly
    with pytest.raises(KalkanError, match="no saved policy yet"):
        open_district_engine(away, school_id="school", data_dir=tmp_path / "new",
                             default_group="students", categories=None)
    # Another school's saved file is not this school's policy.
    with pytest.raises(KalkanError, match="no saved policy yet"):
        open_district_engine(away, school_id="other", data_dir=tmp_path,
                             default_group="students", categories=None)


def test_a_baseline_that_lists_sites_for_an_optional_category_is_refused():
    with pytest.raises(PolicyError) as refused:
        parse_baseline("mandatory: [adult]\nsites:\n  games: [toys.example]\n", "b.yaml")
    assert refused.value.where == "b.yaml:3"
    assert "does not make mandatory" in str(refused.value)
