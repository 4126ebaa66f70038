"""Applying the detector's updates to the database: alerts, evidence, and the outbox.

Called inside one transaction with the detector's position, so that after a crash every
update is applied exactly once, together with the notifications it causes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from gateway.alerts.models import Alert, AlertEvidence, Severity
from gateway.alerts.rules import AlertUpdate, RuleSettings
from policies.database import utcnow

MAX_SITES = 20
EPOCH = dt.datetime(1970, 1, 1)


def naive_utc(epoch: float) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=epoch)


def insert_ignoring_duplicates(db: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT … ON CONFLICT DO NOTHING on SQLite and PostgreSQL alike."""
    if not rows:
        return
    if db.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    db.execute(insert(table).on_conflict_do_nothing(), list(rows))


def apply_updates(db: Session, updates: Iterable[AlertUpdate], settings: RuleSettings,
                  ) -> list[tuple[Alert, bool]]:
    """Create or grow alerts; returns ``(alert, notify)`` for alerts that are new or whose
    severity rose (their ``version`` grew), which are the ones to tell the teachers about."""
    now = utcnow()
    touched: dict[str, tuple[Alert, bool]] = {}
    for u in updates:
        alert, notify = touched.get(u.key, (None, False))
        if alert is None:
            alert = db.scalar(select(Alert).where(Alert.dedup_key == u.key))
        e = u.subject
        times = [ev.time for ev in u.evidence] or [e.time]
        if alert is None:
            attempts = max(u.new_attempts, 1)
            alert = Alert(
                dedup_key=u.key, rule=u.rule, category=u.category,
                severity=settings.severity(u.rule, u.category, attempts).value, version=1,
                created_at=now, updated_at=now, first_seen=naive_utc(min(times)),
                last_seen=naive_utc(max(times)), attempts=attempts, client=e.client,
                device_id=e.device_id, student_id=e.student_id, class_id=e.class_id,
                room_id=e.room_id, group_id=e.group_id, session_id=e.session_id, sites=[])
            db.add(alert)
            notify = True
        else:
            alert.attempts += u.new_attempts
            alert.updated_at = now
            alert.first_seen = min(alert.first_seen, naive_utc(min(times)))
            alert.last_seen = max(alert.last_seen, naive_utc(max(times)))
            alert.class_id = alert.class_id or e.class_id
            alert.device_id = alert.device_id or e.device_id
            severity = settings.severity(alert.rule, alert.category, alert.attempts)
            if severity.rank > Severity(alert.severity).rank:
                alert.severity = severity.value
                alert.version += 1
                notify = True
        sites = list(alert.sites or [])
        for ev in u.evidence:
            if ev.host not in sites and len(sites) < MAX_SITES:
                sites.append(ev.host)
        if sites != alert.sites:
            alert.sites = sites
        db.flush()
        insert_ignoring_duplicates(db, AlertEvidence.__table__, [
            {"alert_id": alert.id, "event_id": ev.id, "time": naive_utc(ev.time),
             "channel": ev.channel, "host": ev.host, "category": ev.category,
             "action": ev.action} for ev in {ev.id: ev for ev in u.evidence}.values()])
        touched[u.key] = (alert, notify)
    return list(touched.values())


def known_keys(db: Session, since: dt.datetime) -> set[str]:
    """Dedup keys of alerts seen since ``since``: the detector adds to these, not recreates."""
    return set(db.scalars(select(Alert.dedup_key).where(Alert.last_seen >= since)))
