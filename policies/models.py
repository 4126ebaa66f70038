"""The policy model as database rows (SQLAlchemy 2.x). Alembic migrations mirror this file.

All timestamps are stored as naive UTC; :mod:`policies.database` converts at the edges.
Stored strings (modes, actions, roles, category ids) are enum values: renaming one is a migration.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class GroupKind(StrEnum):
    STUDENT = "student"  # regulation 3.3 applies: mandatory categories are always blocked
    STAFF = "staff"  # teachers and staff: not session-bound (regulation 2.10)
    GUEST = "guest"


class GroupMode(StrEnum):
    BLOCKLIST = "blocklist"  # allow everything but blocked categories and sites
    EDUCATION_ONLY = "education_only"  # allow only allowed categories and sites


class RuleAction(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


class YoutubeRestriction(StrEnum):
    OFF = "off"
    MODERATE = "moderate"
    STRICT = "strict"


class Role(StrEnum):
    COUNCIL = "council"
    RESPONSIBLE = "responsible"
    TEACHER = "teacher"
    DIRECTOR = "director"
    DISTRICT = "district"  # district ICT staff: read every school of the district (district/)


class SessionMode(StrEnum):
    NORMAL = "normal"  # the group's policy applies
    FOCUS = "focus"  # only the session's site list
    CLOSED = "closed"  # nothing


class School(Base):
    __tablename__ = "school"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8), default="ky")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Bishkek")


class Category(Base):
    __tablename__ = "categories"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mandatory: Mapped[bool] = mapped_column(Boolean, default=False)
    names: Mapped[dict[str, Any]] = mapped_column(default=dict)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Group(Base):
    """A category of users and its policy (DESIGN.md: mode, actions, lists, schedule, …)."""

    __tablename__ = "groups"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default=GroupKind.STUDENT.value)
    mode: Mapped[str] = mapped_column(String(32), default=GroupMode.BLOCKLIST.value)
    safe_search: Mapped[bool] = mapped_column(Boolean, default=True)
    youtube_restricted: Mapped[str] = mapped_column(String(16), default=YoutubeRestriction.OFF)
    session_required: Mapped[bool] = mapped_column(Boolean, default=False)
    downloads_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)

    category_actions: Mapped[list[GroupCategoryAction]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="GroupCategoryAction.id")
    schedule: Mapped[list[ScheduleWindow]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="ScheduleWindow.id")


class PolicyRevision(Base):
    """One council-approved state of the policy; rollback is a new revision."""

    __tablename__ = "policy_revisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    author: Mapped[str] = mapped_column(String(200))
    protocol: Mapped[str] = mapped_column(String(64))
    decision_date: Mapped[dt.date] = mapped_column(Date)
    comment: Mapped[str] = mapped_column(Text, default="")
    document: Mapped[str] = mapped_column(Text)  # canonical YAML export after this revision
    diff: Mapped[str] = mapped_column(Text, default="")  # unified diff from the previous one


class GroupCategoryAction(Base):
    __tablename__ = "group_category_actions"
    __table_args__ = (UniqueConstraint("group_id", "category_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    category_id: Mapped[str] = mapped_column(ForeignKey("categories.id"))
    action: Mapped[str] = mapped_column(String(8))
    origin_revision_id: Mapped[int | None] = mapped_column(ForeignKey("policy_revisions.id"))
    group: Mapped[Group] = relationship(back_populates="category_actions")


class SiteRule(Base):
    """An allow or block entry; ``group_id`` NULL means it applies to every group."""

    __tablename__ = "site_rules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(253))
    path: Mapped[str | None] = mapped_column(String(1000))
    action: Mapped[str] = mapped_column(String(8))
    origin_revision_id: Mapped[int | None] = mapped_column(ForeignKey("policy_revisions.id"))


class CategorySite(Base):
    """The policy's own category list entries (the blocklist index adds the public lists)."""

    __tablename__ = "category_sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category_id: Mapped[str] = mapped_column(ForeignKey("categories.id"), index=True)
    domain: Mapped[str] = mapped_column(String(253))
    path: Mapped[str | None] = mapped_column(String(1000))
    origin_revision_id: Mapped[int | None] = mapped_column(ForeignKey("policy_revisions.id"))


class ScheduleWindow(Base):
    """When a group may be online: ``days`` like ``mon-fri`` or ``mon,wed``, local times."""

    __tablename__ = "schedule_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    days: Mapped[str] = mapped_column(String(64))
    start: Mapped[str] = mapped_column(String(5))
    end: Mapped[str] = mapped_column(String(5))
    group: Mapped[Group] = relationship(back_populates="schedule")


class Room(Base):
    __tablename__ = "rooms"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    default_group_id: Mapped[str] = mapped_column(ForeignKey("groups.id"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    networks: Mapped[list[Network]] = relationship(
        back_populates="room", cascade="all, delete-orphan", order_by="Network.id")


class Network(Base):
    __tablename__ = "networks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"))
    cidr: Mapped[str] = mapped_column(String(64), unique=True)
    room: Mapped[Room] = relationship(back_populates="networks")


class Device(Base):
    """A known machine, by IP or MAC, pinned to a room, a seat and perhaps another group."""

    __tablename__ = "devices"
    # "ip or mac" is checked by policies.validation, not the table: re-applying a policy
    # clears both for a moment so that addresses can move between devices.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ip: Mapped[str | None] = mapped_column(String(64), unique=True)
    mac: Mapped[str | None] = mapped_column(String(17), unique=True)
    room_id: Mapped[str | None] = mapped_column(ForeignKey("rooms.id", ondelete="SET NULL"))
    seat: Mapped[str | None] = mapped_column(String(32))
    group_id: Mapped[str | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    position: Mapped[int] = mapped_column(Integer, default=0)


class StaffUser(Base):
    __tablename__ = "staff_users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(8))
    email: Mapped[str | None] = mapped_column(String(254))
    telegram_chat_id: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class SchoolClass(Base):
    """A class such as 7B, its grade, the group its students belong to and its class teacher."""

    __tablename__ = "school_classes"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    grade: Mapped[int] = mapped_column(Integer)
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id"))
    class_teacher_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="SET NULL"))
    class_teacher: Mapped[StaffUser | None] = relationship()


class Student(Base):
    """A student; the name is kept only when written consent is recorded (regulation 2.14–2.17)."""

    __tablename__ = "students"
    __table_args__ = (
        CheckConstraint("name IS NULL OR consent_recorded_on IS NOT NULL", name="name_consent"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_id: Mapped[str] = mapped_column(ForeignKey("school_classes.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    consent_recorded_on: Mapped[dt.date | None] = mapped_column(Date)
    consent_reference: Mapped[str | None] = mapped_column(String(200))
    consent_recorded_by: Mapped[str | None] = mapped_column(String(64))  # who wrote it down
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))


class InternetSession(Base):
    """A teacher's supervised internet session for a class in a room (or some of its seats)."""

    __tablename__ = "internet_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    class_id: Mapped[str | None] = mapped_column(
        ForeignKey("school_classes.id", ondelete="SET NULL"))
    room_id: Mapped[str] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    seats: Mapped[list[Any]] = mapped_column(default=list)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    mode: Mapped[str] = mapped_column(String(16), default=SessionMode.NORMAL.value)
    focus_sites: Mapped[list[Any]] = mapped_column(default=list)
    # Sites the teacher allowed for this session only, at students' requests from the block page.
    allowed_sites: Mapped[list[Any]] = mapped_column(default=list)
    # Regulation 3.3: programs and media downloads are refused to students "unless their
    # session allows it"; the teacher allows them for the class with this switch.
    allow_downloads: Mapped[bool] = mapped_column(Boolean, default=False)
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    source: Mapped[str] = mapped_column(String(16), default="manual")
    teacher: Mapped[StaffUser] = relationship()


class StateVersion(Base):
    """One row whose number grows on every change the gateway must see (policy or session).

    Gateway processes poll it (a single-row read) and recompile their snapshot when it moves.
    """

    __tablename__ = "state_version"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    changed_at: Mapped[dt.datetime] = mapped_column(DateTime)


class RequestKind(StrEnum):
    REVIEW = "review"  # "this site is wrongly blocked": for the council
    LESSON = "lesson"  # "ask my teacher to allow it for this lesson": for the session's teacher
    REPORT = "report"  # regulation 3.4: "this harmful page slipped through"


class RequestStatus(StrEnum):
    OPEN = "open"
    APPROVED = "approved"
    REFUSED = "refused"
    RESOLVED = "resolved"  # a report acted upon (site added to a list) or a review answered


class SiteRequest(Base):
    """A request made from the block page: a review, a lesson allowance, or a report."""

    __tablename__ = "site_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.OPEN.value, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    client: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(64))
    room_id: Mapped[str | None] = mapped_column(String(64))
    group_id: Mapped[str | None] = mapped_column(String(64))
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("internet_sessions.id", ondelete="SET NULL"))
    host: Mapped[str] = mapped_column(String(253))
    url: Mapped[str | None] = mapped_column(String(2000))
    category: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(32))  # the Decision's reason when blocked
    message: Mapped[str] = mapped_column(Text, default="")  # what the student wrote
    language: Mapped[str | None] = mapped_column(String(8))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    answer: Mapped[str | None] = mapped_column(Text)
