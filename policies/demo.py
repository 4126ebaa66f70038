"""The demo school used by ``make demo`` and the tests: rooms, classes 1–11, teachers, a policy.

Addresses are in 10.10.0.0/16 as a school router would hand them out; nothing here is sent
anywhere.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.decision import CouncilDecision
from policies.defaults import (
    DOH_SITES,
    EDUCATION_SITES,
    GOVERNMENT_SITES,
    MANDATORY,
    REFERENCE_SITES,
    SERIOUS,
    category_entries,
    group,
)
from policies.document import render_document
from policies.models import Role, SchoolClass, StaffUser, Student
from policies.revisions import ImportResult, import_policy, latest_revision

DEMO_DECISION = CouncilDecision("1", "2026-08-28")
SCHOOL_HOURS = [{"days": "mon-fri", "from": "08:00", "to": "17:00"},
                {"days": "sat", "from": "08:00", "to": "13:00"}]
STAFF_HOURS = [{"days": "mon-sat", "from": "07:00", "to": "21:00"}]


def demo_policy_data() -> dict[str, Any]:
    distractions = ["social", "games", "chat", "shopping", "paid_services", "ads"]
    return {
        "kalkan_policy": 1,
        "school": {"id": "demo-school-1", "name": "Demo school No 1", "language": "ky",
                   "timezone": "Asia/Bishkek"},
        "categories": category_entries(),
        "groups": [
            group("primary", "Primary school, grades 1–4", mode="education_only",
                  youtube="strict", session_required=True, schedule=SCHOOL_HOURS,
                  allow=["education", "government", "reference"],
                  block=[*MANDATORY, *SERIOUS, *distractions, "video"]),
            group("middle", "Middle school, grades 5–9", youtube="strict",
                  session_required=True, schedule=SCHOOL_HOURS,
                  allow=["education", "government", "reference"],
                  block=[*MANDATORY, *SERIOUS, *distractions],
                  sites_block=["roblox.com", "steampowered.com"]),
            group("senior", "Senior school, grades 10–11", youtube="moderate",
                  session_required=True, schedule=SCHOOL_HOURS,
                  allow=["education", "government", "reference", "video"],
                  block=[*MANDATORY, *SERIOUS, "games", "paid_services"],
                  sites_allow=["vk.com/edu"]),
            group("teachers", "Teachers", kind="staff", safe_search=False, downloads=True,
                  schedule=STAFF_HOURS, block=["adult", "malware", "phishing", "gambling"]),
            group("guests", "Guests", kind="guest", mode="education_only", youtube="strict",
                  allow=["education", "government", "reference"],
                  block=[*MANDATORY, *SERIOUS]),
        ],
        "rooms": [
            {"id": "lab1", "name": "Computer lab 1 (room 204)", "default_group": "middle",
             "networks": ["10.10.1.0/24", "fd00:10:10:1::/64"]},
            {"id": "lab2", "name": "Computer lab 2 (room 305)", "default_group": "senior",
             "networks": ["10.10.2.0/24"]},
            {"id": "library", "name": "Library", "default_group": "middle",
             "networks": ["10.10.3.0/24"]},
            {"id": "staffroom", "name": "Staff room", "default_group": "teachers",
             "networks": ["10.10.9.0/24"]},
        ],
        "devices": [
            {"id": "lab1-teacher", "ip": "10.10.1.10", "room": "lab1", "seat": "teacher",
             "group": "teachers"},
            {"id": "lab1-pc01", "ip": "10.10.1.101", "mac": "52:54:00:10:01:01", "room": "lab1",
             "seat": "1"},
            {"id": "lab1-pc02", "ip": "10.10.1.102", "mac": "52:54:00:10:01:02", "room": "lab1",
             "seat": "2"},
        ],
        "sites": {"allow": ["school1.edu.kg"], "block": ["1xbet.com"]},
        "category_sites": {
            "education": EDUCATION_SITES,
            "government": GOVERNMENT_SITES,
            "reference": REFERENCE_SITES,
            "doh": DOH_SITES,
            "adult": ["pornhub.com", "xvideos.com", "xhamster.com"],
            "social": ["facebook.com", "instagram.com", "tiktok.com", "vk.com", "ok.ru"],
            "games": ["roblox.com", "minecraft.net", "steampowered.com", "epicgames.com"],
            "video": ["youtube.com", "youtu.be", "rutube.ru"],
            "chat": ["discord.com", "telegram.org", "web.whatsapp.com"],
            "proxy_vpn": ["hidemy.name", "windscribe.com", "psiphon.ca", "torproject.org"],
            "gambling": ["1xbet.com", "pin-up.casino", "melbet.com"],
        },
    }


DEMO_STAFF = [
    # username, full name, role, language
    ("admin", "Responsible person (demo)", Role.RESPONSIBLE, "ru"),
    ("council", "Chair of the methodical council (demo)", Role.COUNCIL, "ky"),
    ("director", "Director (demo)", Role.DIRECTOR, "ky"),
    ("aigul", "Aigul Sadykova", Role.TEACHER, "ky"),
    ("bakyt", "Bakyt Toktogulov", Role.TEACHER, "ru"),
    ("dana", "Dana Omarova", Role.TEACHER, "kk"),
]


def grade_group(grade: int) -> str:
    return "primary" if grade <= 4 else "middle" if grade <= 9 else "senior"


def seed_demo(db: Session, *, author: str = "demo") -> ImportResult:
    """Load the demo policy as a council revision, then the staff, classes and students.

    Running it again adds no revision while the demo policy is the one in force.
    """
    text = render_document(demo_policy_data())
    latest = latest_revision(db)
    if latest is not None and latest.document == text:
        result = ImportResult(latest, changed=False)
    else:
        result = import_policy(db, text, file="demo policy", decision=DEMO_DECISION,
                               author=author,
                               comment="demo school: policy for the 2026/27 school year")
    staff = {}
    for username, full_name, role, language in DEMO_STAFF:
        user = db.scalar(select(StaffUser).where(StaffUser.username == username))
        if user is None:
            user = StaffUser(username=username, full_name=full_name, role=role.value,
                             language=language)
            db.add(user)
        staff[username] = user
    db.flush()
    class_teachers = {"7B": "aigul", "10A": "bakyt", "3A": "dana"}
    for grade in range(1, 12):
        for letter in ("A", "B") if grade == 7 else ("A",):
            cid = f"{grade}{letter}"
            if db.get(SchoolClass, cid) is None:
                teacher = staff.get(class_teachers.get(cid, ""))
                db.add(SchoolClass(id=cid, grade=grade, group_id=grade_group(grade),
                                   class_teacher_id=teacher.id if teacher else None))
    db.flush()
    if not db.scalar(select(Student.id).limit(1)):
        consent = dt.date(2026, 9, 2)
        db.add_all([
            Student(class_id="7B", name="Aibek Usenov", consent_recorded_on=consent,
                    consent_reference="consent form 7B/1"),
            Student(class_id="7B", name="Nurila Asanova", consent_recorded_on=consent,
                    consent_reference="consent form 7B/2"),
            Student(class_id="7B"),  # no consent: known only by class and device
            Student(class_id="10A"),
        ])
    db.commit()
    return result
