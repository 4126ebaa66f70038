"""Students of a class, with their consent records (regulations 2.14–2.17).

A student's name is kept only with recorded written consent: the date, the document's
reference and who recorded it (the table's CHECK constraint refuses a name without a date).
Withdrawing consent erases the name and the record; the student stays, known by class and
device only. The audit log says what was done to which student number, never the name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from admin_ui.access import roles
from admin_ui.audit import record
from admin_ui.db import get_db
from admin_ui.models import AuditAction
from policies.errors import KalkanError
from policies.models import Device, Role, SchoolClass, Student

bp = Blueprint("students", __name__, url_prefix="/classes/<class_id>/students")


def record_consent(student: Student, *, name: str, date: str, reference: str,
                   recorded_by: str) -> None:
    """Give ``student`` a name under a written consent; all three facts are required."""
    name, reference = name.strip(), reference.strip()
    if not name:
        raise KalkanError(_("Write the student's name as in the consent form."))
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise KalkanError(_("Give the date of the written consent.")) from None
    if day > dt.date.today():
        raise KalkanError(_("The consent date is in the future: check it."))
    if not reference:
        raise KalkanError(_("Give the consent document's reference (its number or file)."))
    student.name, student.consent_recorded_on = name[:200], day
    student.consent_reference, student.consent_recorded_by = reference[:200], recorded_by


def withdraw_consent(student: Student) -> None:
    """Consent withdrawn: the name and the record go; the student stays, without a name."""
    student.name = student.consent_recorded_on = None
    student.consent_reference = student.consent_recorded_by = None


def _class_or_404(db: Session, class_id: str) -> SchoolClass:
    row = db.get(SchoolClass, class_id)
    if row is None:
        abort(404)
    return row


def _student_or_404(db: Session, class_id: str, student_id: str) -> Student:
    student = db.get(Student, int(student_id)) if student_id.isdigit() else None
    if student is None or student.class_id != class_id:
        abort(404)
    return student


def _page(class_id: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    db = get_db()
    school_class = _class_or_404(db, class_id)
    students = db.scalars(select(Student).where(Student.class_id == class_id)
                          .order_by(Student.id)).all()
    devices = db.scalars(select(Device).order_by(Device.position)).all()
    return render_template("people/students.html", school_class=school_class,
                           students=students, devices=devices, form=request.form,
                           today=dt.date.today().isoformat(), **extra), status


@bp.get("/")
@roles(Role.RESPONSIBLE, Role.DIRECTOR)
def index(class_id: str) -> tuple[str, int]:
    return _page(class_id)


@bp.post("/")
@roles(Role.RESPONSIBLE)
def save(class_id: str) -> Response | tuple[str, int]:
    """One form, one action: ``add``, ``consent``, ``withdraw``, ``device`` or ``remove``."""
    db = get_db()
    _class_or_404(db, class_id)
    form = request.form
    action = form.get("action", "")
    try:
        if action == "add":
            student = Student(class_id=class_id)
            if form.get("name", "").strip():
                record_consent(student, name=form.get("name", ""),
                               date=form.get("consent_date", ""),
                               reference=form.get("consent_reference", ""),
                               recorded_by=current_user.username)
            student.device_id = _device(db, form.get("device", ""))
            db.add(student)
            db.flush()
            record(db, AuditAction.STUDENT_SAVED, f"student {student.id} of {class_id}",
                   with_name=student.name is not None, device=student.device_id)
            flash(_("Student No %(n)d added.", n=student.id))
        elif action in ("consent", "withdraw", "device", "remove"):
            student = _student_or_404(db, class_id, form.get("student", ""))
            target = f"student {student.id} of {class_id}"
            if action == "consent":
                record_consent(student, name=form.get("name", ""),
                               date=form.get("consent_date", ""),
                               reference=form.get("consent_reference", ""),
                               recorded_by=current_user.username)
                record(db, AuditAction.CONSENT_RECORDED, target,
                       reference=student.consent_reference,
                       date=student.consent_recorded_on.isoformat())
                flash(_("Consent recorded for student No %(n)d.", n=student.id))
            elif action == "withdraw":
                withdraw_consent(student)
                record(db, AuditAction.CONSENT_WITHDRAWN, target)
                flash(_("Consent withdrawn: the name of student No %(n)d is erased.",
                        n=student.id))
            elif action == "device":
                student.device_id = _device(db, form.get("device", ""))
                record(db, AuditAction.STUDENT_SAVED, target, device=student.device_id)
                flash(_("Student No %(n)d saved.", n=student.id))
            else:
                db.delete(student)
                record(db, AuditAction.STUDENT_REMOVED, target)
                flash(_("Student No %(n)d removed.", n=student.id))
        else:
            raise KalkanError(_("Choose what to do."))
        db.commit()
    except KalkanError as exc:
        db.rollback()
        return _page(class_id, 400, error=str(exc))
    return redirect(url_for("students.index", class_id=class_id))


def _device(db: Session, device_id: str) -> str | None:
    if not device_id:
        return None
    if db.get(Device, device_id) is None:
        raise KalkanError(_("Choose the device from the list."))
    return device_id
