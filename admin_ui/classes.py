"""Classes and who teaches them: grade, the group its students belong to, the class teacher,
and the other teachers who teach it (they see the class on their lessons page).

Teachers are the staff accounts of :mod:`admin_ui.accounts`; this page only links them to
classes. Classes are not part of the council's policy document (they hold people), so a change
here is saved directly, and audit-logged.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from admin_ui.access import roles
from admin_ui.audit import record
from admin_ui.db import get_db
from admin_ui.models import AuditAction, TeacherClass
from policies.errors import KalkanError
from policies.models import Group, GroupKind, Role, SchoolClass, StaffUser, Student
from policies.timetable import Lesson

bp = Blueprint("classes", __name__, url_prefix="/classes")

CLASS_ID = re.compile(r"^[0-9A-Za-z\u0400-\u04ff][0-9A-Za-z\u0400-\u04ff_-]{0,15}$")
VIEWERS = (Role.RESPONSIBLE, Role.DIRECTOR)


def save_class(db: Session, class_id: str, *, grade: str, group_id: str,
               class_teacher_id: str, teacher_ids: list[str]) -> SchoolClass:
    """Add or change a class and the teachers who teach it; the caller commits."""
    if not CLASS_ID.match(class_id):
        raise KalkanError(_("%(id)s is not a usable class name: write it like 7B or 10A.",
                            id=class_id or "''"))
    if not grade.isdigit() or not 0 <= int(grade) <= 12:
        raise KalkanError(_("The grade is a number from 0 to 12."))
    group = db.get(Group, group_id)
    if group is None or group.kind != GroupKind.STUDENT:
        raise KalkanError(_("Choose the students' group of the class."))
    staff = {str(u.id): u for u in db.scalars(select(StaffUser))}
    if class_teacher_id and class_teacher_id not in staff:
        raise KalkanError(_("Choose the class teacher from the list."))
    row = db.get(SchoolClass, class_id) or SchoolClass(id=class_id)
    row.grade, row.group_id = int(grade), group_id
    row.class_teacher_id = int(class_teacher_id) if class_teacher_id else None
    db.add(row)
    db.flush()
    db.execute(delete(TeacherClass).where(TeacherClass.class_id == class_id))
    for tid in dict.fromkeys(teacher_ids):
        if tid in staff:
            db.add(TeacherClass(teacher_id=int(tid), class_id=class_id))
    return row


def remove_class(db: Session, class_id: str) -> None:
    row = db.get(SchoolClass, class_id)
    if row is None:
        abort(404)
    students = db.scalar(select(func.count(Student.id)).where(Student.class_id == class_id))
    if students:
        raise KalkanError(_("Class %(id)s still has %(n)d students: move or remove them first.",
                            id=class_id, n=students))
    lessons = db.scalar(select(func.count(Lesson.id)).where(Lesson.class_id == class_id))
    if lessons:
        raise KalkanError(_("The timetable has %(n)d lessons of this class: move or remove "
                            "them first.", n=lessons))
    db.delete(row)


def _page(status: int = 200, **extra: Any) -> tuple[str, int]:
    db = get_db()
    classes = db.scalars(select(SchoolClass).order_by(SchoolClass.grade, SchoolClass.id)).all()
    teaching: dict[str, list[int]] = {}
    for link in db.scalars(select(TeacherClass)):
        teaching.setdefault(link.class_id, []).append(link.teacher_id)
    counts = dict(db.execute(select(Student.class_id, func.count(Student.id))
                             .group_by(Student.class_id)).all())
    staff = db.scalars(select(StaffUser).where(StaffUser.active.is_(True))
                       .order_by(StaffUser.full_name)).all()
    groups = db.scalars(select(Group).where(Group.kind == GroupKind.STUDENT.value)
                        .order_by(Group.position)).all()
    form = request.form
    chosen = db.get(SchoolClass, request.args.get("edit", "")) if request.method == "GET" else None
    if chosen is not None:  # "change" link: the form starts with the class as it is
        form = MultiDict([("id", chosen.id), ("grade", str(chosen.grade)),
                          ("group", chosen.group_id),
                          ("class_teacher", str(chosen.class_teacher_id or ""))]
                         + [("teachers", str(t)) for t in teaching.get(chosen.id, [])])
    return render_template("people/classes.html", classes=classes, teaching=teaching,
                           counts=counts, staff=staff, groups=groups, form=form,
                           **extra), status


@bp.get("/")
@roles(*VIEWERS)
def index() -> tuple[str, int]:
    return _page()


@bp.post("/")
@roles(Role.RESPONSIBLE)
def save() -> Response | tuple[str, int]:
    db = get_db()
    form = request.form
    class_id = form.get("id", "").strip()
    try:
        if form.get("remove"):
            remove_class(db, class_id)
            record(db, AuditAction.CLASS_REMOVED, f"class {class_id}")
            flash(_("Class %(id)s removed.", id=class_id))
        else:
            row = save_class(db, class_id, grade=form.get("grade", "").strip(),
                             group_id=form.get("group", ""),
                             class_teacher_id=form.get("class_teacher", ""),
                             teacher_ids=form.getlist("teachers"))
            record(db, AuditAction.CLASS_SAVED, f"class {class_id}", grade=row.grade,
                   group=row.group_id, class_teacher=row.class_teacher_id,
                   teachers=sorted(int(t) for t in form.getlist("teachers") if t.isdigit()))
            flash(_("Class %(id)s saved.", id=class_id))
        db.commit()
    except KalkanError as exc:
        db.rollback()
        return _page(400, error=str(exc), editing=class_id)
    return redirect(url_for("classes.index"))
