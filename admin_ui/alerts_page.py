"""Deliberate-violation alerts in the admin: who sees which, their evidence, "acknowledged".

Regulation 2.7: the class teacher (and the lesson's teacher) is told of a student's
deliberate attempts. A teacher sees the open alerts about their own classes and their own
sessions; the council, the responsible person and the director see all of them (dashboard).
Acknowledging is a change, so it goes to the audit log.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from admin_ui.access import SUPERVISORS, roles
from admin_ui.audit import record
from admin_ui.auth import home_url
from admin_ui.db import get_db
from admin_ui.models import AuditAction
from admin_ui.staff import teacher_class_ids
from gateway.alerts.models import Alert, AlertEvidence, AlertStatus
from policies.database import utcnow
from policies.models import InternetSession, Role, StaffUser

bp = Blueprint("alerts", __name__, url_prefix="/alerts")

SHOWN = 10  # open alerts on one page: what one can act on at once; the rest are counted
SHOWN_ON_PHONE = 5  # on the teacher's lesson page, between other things on a small screen
EVIDENCE_ROWS = 5


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was tried: the sites, how many times each, first and last time."""

    host: str
    category: str | None
    times: int
    first: object
    last: object


@dataclass(frozen=True, slots=True)
class ShownAlert:
    alert: Alert
    evidence: list[Evidence]


@dataclass(frozen=True, slots=True)
class OpenAlerts:
    shown: list[ShownAlert]  # the newest SHOWN
    total: int  # all open ones the user may see

    @property
    def more(self) -> int:
        return self.total - len(self.shown)


def _scope(db: Session, user: StaffUser, classes: list[str] | None = None) -> list[object]:
    """The WHERE terms that keep a teacher to their classes and sessions; none for the rest."""
    if user.role != Role.TEACHER:
        return []
    if classes is None:
        classes = teacher_class_ids(db, user)
    sessions = select(InternetSession.id).where(InternetSession.teacher_id == user.id)
    return [or_(Alert.class_id.in_(classes), Alert.session_id.in_(sessions))]


def open_alerts(db: Session, user: StaffUser, *, classes: list[str] | None = None,
                limit: int = SHOWN, evidence_rows: int = EVIDENCE_ROWS) -> OpenAlerts:
    """Open alerts ``user`` may see, newest activity first, each with its evidence, and how
    many there are in all; ``classes``: the teacher's, when the caller has them already."""
    scope = (Alert.status == AlertStatus.OPEN.value, *_scope(db, user, classes))
    alerts = list(db.scalars(select(Alert).where(*scope)
                             .order_by(Alert.last_seen.desc(), Alert.id.desc()).limit(limit)))
    if not alerts:
        return OpenAlerts([], 0)
    total = len(alerts) if len(alerts) < limit else (
        db.scalar(select(func.count()).select_from(Alert).where(*scope)) or 0)
    rows = db.execute(select(AlertEvidence.alert_id, AlertEvidence.host,
                             AlertEvidence.category, AlertEvidence.time)
                      .where(AlertEvidence.alert_id.in_([a.id for a in alerts]))).all()
    per_alert: dict[int, dict[str, list[object]]] = defaultdict(dict)
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for alert_id, host, category, time in rows:
        counts[alert_id][host] += 1
        seen = per_alert[alert_id].setdefault(host, [category, time, time])
        seen[1] = min(seen[1], time)  # type: ignore[type-var]
        seen[2] = max(seen[2], time)  # type: ignore[type-var]
    shown = []
    for a in alerts:
        evidence = [Evidence(host, per_alert[a.id][host][0], n,  # type: ignore[arg-type]
                             per_alert[a.id][host][1], per_alert[a.id][host][2])
                    for host, n in counts[a.id].most_common(evidence_rows)]
        shown.append(ShownAlert(a, evidence))
    return OpenAlerts(shown, total)


def may_see(db: Session, user: StaffUser, alert: Alert) -> bool:
    scope = _scope(db, user)
    if not scope:
        return True
    return db.scalar(select(Alert.id).where(Alert.id == alert.id, *scope)) is not None


@bp.post("/<int:alert_id>/acknowledge")
@roles(*SUPERVISORS)
def acknowledge(alert_id: int) -> Response:
    db = get_db()
    user = db.get(StaffUser, current_user.id)
    alert = db.get(Alert, alert_id)
    if user is None or alert is None or not may_see(db, user, alert):
        abort(404)  # an alert about another teacher's class is not theirs to see
    if alert.status == AlertStatus.OPEN.value:
        alert.status = AlertStatus.ACKNOWLEDGED.value
        alert.updated_at = utcnow()
        record(db, AuditAction.ALERT_ACKNOWLEDGED, f"alert #{alert.id}", category=alert.category,
               class_id=alert.class_id, device=alert.device_id, attempts=alert.attempts)
        db.commit()
        flash(_("Alert #%(id)d is acknowledged.", id=alert.id))
    return redirect(_back())


def _back() -> str:
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return home_url()

