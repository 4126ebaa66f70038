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
from gateway.alerts.rules import AlertUpdate, RuleSettings, StoredEvent
from policies.database import utcnow

MAX_SITES = 20
KEY_CHUNK = 500  # dedup keys per IN (…) query
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
    updates = list(updates)
    # The alerts that exist, read at once rather than one query per update.
    existing: dict[str, Alert] = {}
    keys = list(dict.fromkeys(u.key for u in updates))
    for i in range(0, len(keys), KEY_CHUNK):
        for found in db.scalars(select(Alert).where(Alert.dedup_key.in_(keys[i:i + KEY_CHUNK]))):
            existing[found.dedup_key] = found
    touched: dict[str, tuple[Alert, bool]] = {}
    evidence: list[tuple[Alert, list[StoredEvent]]] = []
    for u in updates:
        alert, notify = touched.get(u.key, (None, False))
        if alert is None:
            alert = existing.get(u.key)
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
        evidence.append((alert, u.evidence))
        touched[u.key] = (alert, notify)
    db.flush()  # once for all: new alerts get their ids, in the order they were added
    rows = [(alert.id, ev.id, naive_utc(ev.time), ev.channel, ev.host, ev.category, ev.action)
            for alert, events in evidence for ev in {ev.id: ev for ev in events}.values()]
    conn = db.connection()
    if rows and conn.dialect.name == "sqlite":
        # Straight through the driver (thousands of rows a round), with the time in the text
        # form SQLAlchemy writes and reads.
        conn.exec_driver_sql(_SQLITE_EVIDENCE, [(*r[:2], _sqlite_time(r[2]), *r[3:])
                                                for r in rows])
    else:
        insert_ignoring_duplicates(db, AlertEvidence.__table__, [
            dict(zip(_EVIDENCE_COLUMNS, r, strict=True)) for r in rows])
    return list(touched.values())


_EVIDENCE_COLUMNS = ("alert_id", "event_id", "time", "channel", "host", "category", "action")
_SQLITE_EVIDENCE = (f"INSERT INTO alert_evidence ({', '.join(_EVIDENCE_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(_EVIDENCE_COLUMNS))}) ON CONFLICT DO NOTHING")


def _sqlite_time(value: dt.datetime) -> str:
    """SQLAlchemy's SQLite form of a naive datetime: always with six decimals."""
    text = value.isoformat(" ")
    return text if value.microsecond else text + ".000000"


def known_keys(db: Session, since: dt.datetime) -> set[str]:
    """Dedup keys of alerts seen since ``since``: the detector adds to these, not recreates."""
    return set(db.scalars(select(Alert.dedup_key).where(Alert.last_seen >= since)))
