"""The detector's loop: read new access events, run the rules, store alerts and the outbox.

One detector per installation (``kalkan run`` starts it), because the rules need the DNS and
the proxy events of a client together, and those are written by different processes. It
follows ``access_events`` by id; its position is in ``pipeline_state`` and moves in the same
transaction as the alerts and notifications it writes, so a restart neither loses nor
repeats an update. After a restart it re-reads the last window silently to rebuild its
counts. On PostgreSQL, ids can commit out of order; ids skipped over are looked for again
for ``GAP_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.rules import Detector, RuleSettings, StoredEvent
from gateway.alerts.store import apply_updates, known_keys
from gateway.events.models import AccessRecord, PipelineState
from gateway.events.store import immediate_sessions
from gateway.notify.outbox import OutboxPolicy, enqueue
from gateway.polling import PollingThread
from policies.database import utcnow
from policies.models import Category, Group, GroupKind, School

log = logging.getLogger(__name__)

STATE_KEY = "detector.last_event_id"
READ_LIMIT = 20_000
GAP_SECONDS = 30.0
EPOCH = dt.datetime(1970, 1, 1)

_T = AccessRecord.__table__.c
_COLUMNS = (_T.id, _T.time, _T.channel, _T.client, _T.host, _T.action, _T.reason, _T.category,
            _T.group_id, _T.room_id, _T.device_id, _T.session_id, _T.class_id, _T.student_id,
            _T.bypass, _T.noise, _T.referrer, _T.flag)


_SQLITE_SELECT = (f"SELECT {', '.join(c.name for c in _COLUMNS)} FROM access_events "
                  "WHERE {}")


def _stored(row: Row[Any] | tuple[Any, ...]) -> StoredEvent:
    time = row[1]
    if time.__class__ is str:  # SQLite read through the driver: SQLAlchemy's text form
        time = dt.datetime.fromisoformat(time)
    return _make((row[0], (time - EPOCH).total_seconds(), *row[2:14], bool(row[14]),
                  *row[15:]))


_make = StoredEvent._make


def _read(db: Session, stmt: Any, sqlite_where: str, params: tuple[Any, ...]) -> list[Any]:
    """Rows of ``stmt``; on SQLite the same query straight through the driver, as plain
    tuples with the time as stored (text), which saves most of the cost per row."""
    conn = db.connection()
    if conn.dialect.name != "sqlite":
        return list(conn.execute(stmt).all())
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        return cursor.execute(_SQLITE_SELECT.format(sqlite_where), params).fetchall()
    finally:
        cursor.close()


class AlertService(PollingThread):
    def __init__(self, sessions: sessionmaker[Session], config: Any, *,
                 interval: float = 1.0) -> None:
        self.sessions = sessions
        self.writes = immediate_sessions(sessions)
        self.config = config
        self.interval = interval
        self.detector: Detector | None = None
        self.outbox: OutboxPolicy | None = None
        self.cursor = 0
        self.gaps: list[tuple[int, int, float]] = []  # (first id, last id, since monotonic)
        self.processed = 0
        super().__init__()

    # --- setting up -------------------------------------------------------------------------

    def load(self) -> None:
        """Read the policy facts the rules need, the position, and rebuild the windows."""
        with self.sessions() as db:
            timezone = db.scalar(select(School.timezone).limit(1)) or "UTC"
            mandatory = set(db.scalars(select(Category.id).where(Category.mandatory)))
            staff = set(db.scalars(select(Group.id).where(Group.kind == GroupKind.STAFF.value)))
            settings = RuleSettings.from_config(self.config.alerts, mandatory=mandatory or None,
                                                timezone=timezone)
            self.detector = Detector(settings, staff_groups=staff)
            self.outbox = OutboxPolicy.from_config(self.config, timezone)
            state = db.get(PipelineState, STATE_KEY)
            self.cursor = state.value if state is not None else 0
            since = utcnow() - dt.timedelta(seconds=settings.window_seconds + 60)
            self.detector.known = known_keys(db, since)
            warm = db.execute(select(*_COLUMNS).where(_T.time >= since, _T.id <= self.cursor)
                              .order_by(_T.id)).all()
        self.detector.feed((_stored(r) for r in warm), silent=True)

    # --- one round --------------------------------------------------------------------------

    def poll(self) -> int:
        """Process what was written since the last round; returns the number of events read."""
        if self.detector is None:
            self.load()
        assert self.detector is not None and self.outbox is not None
        with self.sessions() as db:  # a read: never in the event writer's way
            rows = _read(db, select(*_COLUMNS).where(_T.id > self.cursor).order_by(_T.id)
                         .limit(READ_LIMIT), "id > ? ORDER BY id LIMIT ?",
                         (self.cursor, READ_LIMIT))
            late = self._read_gaps(db)
        events = [_stored(r) for r in (*late, *rows)]
        if not events:
            return 0
        updates = self.detector.feed(events)
        if rows:
            self._note_gaps(rows)
            self.cursor = max(self.cursor, rows[-1][0])
        with self.writes() as db:  # alerts, outbox and position: all or nothing
            for alert, notify in apply_updates(db, updates, self.detector.settings):
                if notify:
                    enqueue(db, alert, self.outbox)
            self._save_cursor(db)
            db.commit()
        self.processed += len(events)
        self.detector.expire()
        return len(events)

    def _note_gaps(self, rows: list[Row[Any]]) -> None:
        expected = self.cursor + 1
        now = time.monotonic()
        for row in rows:
            if row[0] > expected and self.cursor:
                self.gaps.append((expected, row[0] - 1, now))
            expected = row[0] + 1

    def _read_gaps(self, db: Session) -> list[Row[Any]]:
        if not self.gaps:
            return []
        now = time.monotonic()
        self.gaps = [g for g in self.gaps if now - g[2] < GAP_SECONDS][-100:]
        found: list[Row[Any]] = []
        remaining = []
        for first, last, since in self.gaps:
            rows = _read(db, select(*_COLUMNS).where(_T.id.between(first, last))
                         .order_by(_T.id), "id BETWEEN ? AND ? ORDER BY id", (first, last))
            found += rows
            ids = {r[0] for r in rows}
            # What is still missing stays a gap; what came is processed once.
            start = None
            for i in range(first, last + 1):
                if i not in ids and start is None:
                    start = i
                elif i in ids and start is not None:
                    remaining.append((start, i - 1, since))
                    start = None
            if start is not None:
                remaining.append((start, last, since))
        self.gaps = remaining
        return found

    def _save_cursor(self, db: Session) -> None:
        state = db.get(PipelineState, STATE_KEY)
        if state is None:
            db.add(PipelineState(key=STATE_KEY, value=self.cursor, updated_at=utcnow()))
        else:
            state.value = self.cursor
            state.updated_at = utcnow()

    # --- in a thread ------------------------------------------------------------------------

    thread_name = "kalkan-alerts"

    def run_round(self) -> None:
        while self.poll() >= READ_LIMIT:  # catch up without waiting
            pass

    def round_failed(self) -> None:
        # The database may be away; the position is safe in it. Reload (and rebuild the
        # windows) next round.
        self.detector = None

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
