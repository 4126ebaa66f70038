"""Tables of the web admin: the audit log, which classes each teacher teaches, API tokens.

They share ``Base`` with the policy model, so one set of Alembic migrations covers both.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from policies.models import Base


class AuditAction(StrEnum):
    """What an audit entry records. The value is stored: never rename one."""

    SETUP = "setup"
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_OUT = "sign_out"
    ACCOUNT_CREATED = "account_created"
    ACCOUNT_CHANGED = "account_changed"
    PASSWORD_CHANGED = "password_changed"
    POLICY_SAVED = "policy_saved"
    POLICY_IMPORTED = "policy_imported"
    POLICY_ROLLED_BACK = "policy_rolled_back"
    SESSION_OPENED = "session_opened"
    SESSION_EXTENDED = "session_extended"
    SESSION_CLOSED = "session_closed"
    REQUEST_APPROVED = "request_approved"
    REQUEST_REFUSED = "request_refused"
    TOKEN_CREATED = "token_created"
    TOKEN_REVOKED = "token_revoked"
    CLASS_SAVED = "class_saved"
    CLASS_REMOVED = "class_removed"
    STUDENT_SAVED = "student_saved"
    STUDENT_REMOVED = "student_removed"
    CONSENT_RECORDED = "consent_recorded"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    REQUEST_DISMISSED = "request_dismissed"
    REQUEST_RESOLVED = "request_resolved"
    BLOCKLIST_SOURCE_ADDED = "blocklist_source_added"
    BLOCKLIST_SOURCE_CHANGED = "blocklist_source_changed"
    BLOCKLIST_SOURCE_REMOVED = "blocklist_source_removed"
    BLOCKLIST_UPDATE_STARTED = "blocklist_update_started"
    NOTIFICATIONS_SAVED = "notifications_saved"
    NOTIFICATION_TEST_SENT = "notification_test_sent"
    LESSON_SAVED = "lesson_saved"
    LESSON_REMOVED = "lesson_removed"
    TIMETABLE_IMPORTED = "timetable_imported"
    SCHOOL_VIEWED = "school_viewed"  # district staff opened this school's pages
    ALERT_ACKNOWLEDGED = "alert_acknowledged"


class AuditEntry(Base):
    """One change made through the admin (or one sign-in attempt), who made it and from where."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str | None] = mapped_column(String(64))  # None: nobody was signed in
    role: Mapped[str | None] = mapped_column(String(16))
    client: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(253), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class TeacherClass(Base):
    """A class a teacher teaches (besides the one they are class teacher of)."""

    __tablename__ = "teacher_classes"
    teacher_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True)
    class_id: Mapped[str] = mapped_column(
        ForeignKey("school_classes.id", ondelete="CASCADE"), primary_key=True)


class ApiToken(Base):
    """A key for the JSON API (a district or an e-diary system). It acts as its staff account,
    with that account's role; only a hash of it is kept, the key itself is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
