"""One student's records: export them (CSV) or erase them (regulations 2.14–2.17).

Records name a student only where consent is recorded, by ``student_id``. Erasure removes
every record that names the student: access events, allowed counts, and alerts (with their
evidence and notifications); records that never named the student (device, room and class
only) are not personal data of that student and stay until their retention period ends.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import TextIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.alerts.models import Alert, AlertEvidence
from gateway.events.models import AccessRecord, AllowedCount
from gateway.notify.models import Notification
from policies.errors import KalkanError, NotFound
from policies.models import Student

CSV_COLUMNS = ("record", "id", "time_utc", "channel", "client", "host", "action", "reason",
               "category", "room", "device", "class", "session", "count")


def find_student(db: Session, text: str) -> Student:
    """A student by id, or by name (only students with consent have one)."""
    if text.isdigit():
        student = db.get(Student, int(text))
    else:
        matches = list(db.scalars(select(Student).where(Student.name == text)))
        if len(matches) > 1:
            raise KalkanError(f"{len(matches)} students are called {text!r}",
                              hint="give the student's number instead")
        student = matches[0] if matches else None
    if student is None:
        raise NotFound(f"there is no student {text!r}",
                       hint="give the student's number or name as recorded with consent")
    return student


def export_student(db: Session, student_id: int, out: TextIO) -> int:
    """Write every record that names the student as CSV; returns the number of rows."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    n = 0
    for e in db.scalars(select(AccessRecord).where(AccessRecord.student_id == student_id)
                        .order_by(AccessRecord.time)):
        writer.writerow(("event", e.id, f"{e.time:%Y-%m-%d %H:%M:%S}", e.channel, e.client,
                         e.host, e.action, e.reason, e.category or "", e.room_id or "",
                         e.device_id or "", e.class_id or "", e.session_id or "", 1))
        n += 1
    for c in db.scalars(select(AllowedCount).where(AllowedCount.student_id == student_id)
                        .order_by(AllowedCount.minute)):
        writer.writerow(("allowed_count", "", f"{c.minute:%Y-%m-%d %H:%M:%S}", "", c.client,
                         c.host, "allow", "", c.category or "", c.room_id or "",
                         c.device_id or "", c.class_id or "", "", c.count))
        n += 1
    for a in db.scalars(select(Alert).where(Alert.student_id == student_id)
                        .order_by(Alert.id)):
        writer.writerow(("alert", a.id, f"{a.first_seen:%Y-%m-%d %H:%M:%S}", "", a.client,
                         " ".join(a.sites or ()), a.severity, a.rule, a.category,
                         a.room_id or "", a.device_id or "", a.class_id or "",
                         a.session_id or "", a.attempts))
        n += 1
    return n


def export_student_text(db: Session, student_id: int) -> str:
    buffer = io.StringIO()
    export_student(db, student_id, buffer)
    return buffer.getvalue()


@dataclass
class Erasure:
    events: int
    counts: int
    alerts: int


def erase_student(db: Session, student_id: int) -> Erasure:
    """Delete every record that names the student, in one transaction."""
    alert_ids = list(db.scalars(select(Alert.id).where(Alert.student_id == student_id)))
    if alert_ids:
        db.execute(delete(Notification).where(Notification.alert_id.in_(alert_ids)))
        db.execute(delete(AlertEvidence).where(AlertEvidence.alert_id.in_(alert_ids)))
        db.execute(delete(Alert).where(Alert.id.in_(alert_ids)))
    events = db.execute(delete(AccessRecord).where(AccessRecord.student_id == student_id))
    counts = db.execute(delete(AllowedCount).where(AllowedCount.student_id == student_id))
    db.commit()
    return Erasure(events.rowcount or 0, counts.rowcount or 0, len(alert_ids))

