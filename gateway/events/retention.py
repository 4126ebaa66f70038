"""Retention: delete what is older than the school keeps, in small steps, and cap the size.

Periods per kind (``retention``): blocked and allowed events and allowed counts 30 days,
alerts with their evidence and notifications one school year (365 days). Over
``max_event_store_mb`` the oldest events go first, but never those younger than
``minimum_days`` (the legal minimum the school sets). Deletes run in batches of
``BATCH`` rows, each its own short transaction with a pause after it, so that the event
writer (which waits at most ``events.database_timeout`` for a lock) never has to journal
because of a purge.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import DateTime, Engine, bindparam, text
from sqlalchemy.orm import Session, sessionmaker

from policies.database import utcnow

log = logging.getLogger(__name__)

BATCH = 2000
PAUSE = 0.02  # seconds between batches: room for the writer's transactions


@dataclass
class PurgeResult:
    deleted: dict[str, int] = field(default_factory=dict)
    store_bytes: int | None = None

    def add(self, kind: str, n: int) -> None:
        if n:
            self.deleted[kind] = self.deleted.get(kind, 0) + n

    def __str__(self) -> str:
        parts = [f"{n} {kind}" for kind, n in self.deleted.items()] or ["nothing"]
        return "deleted " + ", ".join(parts)


def _statement(sql: str, params: dict[str, Any]) -> Any:
    """``text(sql)`` with the datetime parameters typed, so SQLite compares like with like."""
    return text(sql).bindparams(*[bindparam(k, type_=DateTime) for k, v in params.items()
                                  if isinstance(v, dt.datetime)])


def _delete_batches(engine: Engine, sql: str, params: dict[str, Any],
                    pause: float = PAUSE) -> int:
    total = 0
    statement = _statement(sql, params)
    while True:
        with engine.begin() as conn:
            n = conn.execute(statement, {**params, "batch": BATCH}).rowcount or 0
        total += n
        if n < BATCH:
            return total
        time.sleep(pause)


def event_store_bytes(engine: Engine) -> int:
    """Bytes the access log takes: its tables and indexes (used pages on SQLite)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return int(conn.execute(text(
                "SELECT pg_total_relation_size('access_events') + "
                "pg_total_relation_size('allowed_counts')")).scalar() or 0)
        try:
            return int(conn.execute(text(
                "SELECT SUM(pgsize) FROM dbstat WHERE name IN ('access_events', "
                "'allowed_counts') OR tbl_name IN ('access_events', 'allowed_counts')"))
                .scalar() or 0)
        except Exception:  # SQLite built without dbstat: the used part of the whole file
            page = conn.execute(text("PRAGMA page_size")).scalar() or 4096
            count = conn.execute(text("PRAGMA page_count")).scalar() or 0
            free = conn.execute(text("PRAGMA freelist_count")).scalar() or 0
            return int((count - free) * page)


def purge(sessions: sessionmaker[Session], retention: Any, *, now: dt.datetime | None = None,
          pause: float = PAUSE) -> PurgeResult:
    """Delete what the retention settings say is due; safe to run at any time."""
    engine = sessions.kw["bind"]
    now = now or utcnow()
    result = PurgeResult()
    blocked_before = now - dt.timedelta(days=retention.blocked_events_days)
    allowed_before = now - dt.timedelta(days=retention.allowed_events_days)
    alerts_before = now - dt.timedelta(days=retention.alerts_days)
    by_id = ("DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {where} "
             "LIMIT :batch)")
    result.add("blocked events", _delete_batches(engine, by_id.format(
        table="access_events", where="time < :before AND action = 'block'"),
        {"before": blocked_before}, pause))
    result.add("allowed events", _delete_batches(engine, by_id.format(
        table="access_events", where="time < :before AND action <> 'block'"),
        {"before": allowed_before}, pause))
    row = "ctid" if engine.dialect.name == "postgresql" else "rowid"  # it has no id column
    result.add("allowed counts", _delete_batches(engine, (
        f"DELETE FROM allowed_counts WHERE {row} IN (SELECT {row} FROM allowed_counts "
        f"WHERE minute < :before LIMIT :batch)"), {"before": allowed_before}, pause))
    # Evidence and notifications go with their alert (ON DELETE CASCADE on PostgreSQL; on
    # SQLite only with foreign keys on, which open_engine sets, but say it explicitly).
    for table in ("alert_evidence", "notifications"):
        result.add(table.replace("_", " "), _delete_batches(engine, (
            f"DELETE FROM {table} WHERE alert_id IN (SELECT id FROM alerts WHERE "
            f"last_seen < :before LIMIT :batch)"), {"before": alerts_before}, pause))
    result.add("alerts", _delete_batches(engine, by_id.format(
        table="alerts", where="last_seen < :before"), {"before": alerts_before}, pause))
    with engine.begin() as conn:
        params = {"before": alerts_before}
        conn.execute(_statement("DELETE FROM event_losses WHERE reported_at < :before",
                                params), params)
        params = {"before": now - dt.timedelta(days=7)}
        conn.execute(_statement("DELETE FROM journal_marks WHERE updated_at < :before",
                                params), params)
    if retention.max_event_store_mb:
        result.store_bytes = _cap_size(engine, retention, now, result, pause)
    return result


def _cap_size(engine: Engine, retention: Any, now: dt.datetime, result: PurgeResult,
              pause: float) -> int:
    """Delete the oldest events until the log fits ``max_event_store_mb``, but keep every
    event younger than ``minimum_days``. Returns the size after."""
    limit = retention.max_event_store_mb << 20
    keep_after = now - dt.timedelta(days=retention.minimum_days)
    size = event_store_bytes(engine)
    while size > limit:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT COUNT(*) FROM access_events")).scalar() or 0
        if not rows:
            break
        # Delete a little more than the excess, estimated from the mean row size.
        excess_rows = int((size - limit) / max(size / rows, 1)) + 1
        step = min(max(excess_rows, BATCH), rows)
        deleted = 0
        params = {"keep": keep_after, "batch": BATCH}
        statement = _statement("DELETE FROM access_events WHERE id IN (SELECT id FROM "
                               "access_events WHERE time < :keep ORDER BY time LIMIT :batch)",
                               params)
        while deleted < step:
            with engine.begin() as conn:
                n = conn.execute(statement, params).rowcount or 0
            deleted += n
            if n < BATCH:
                break
            time.sleep(pause)
        result.add("events over the size limit", deleted)
        if deleted == 0:
            log.warning("the access log is over max_event_store_mb but every record is "
                        "younger than minimum_days (%d); keeping them",
                        retention.minimum_days)
            break
        size = event_store_bytes(engine)
        if engine.dialect.name == "postgresql":
            break  # its size shrinks only after VACUUM; the next round looks again
    return size


class Purger:
    """Runs :func:`purge` every ``purge_interval_minutes`` in a background thread."""

    def __init__(self, sessions: sessionmaker[Session], retention: Any) -> None:
        self.sessions = sessions
        self.retention = retention
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: PurgeResult | None = None

    def start(self) -> Purger:
        self._thread = threading.Thread(target=self._run, name="kalkan-purge", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.retention.purge_interval_minutes * 60):
            try:
                self.last = purge(self.sessions, self.retention)
                if self.last.deleted:
                    log.info("retention: %s", self.last)
            except Exception:
                log.exception("retention purge failed; trying again next round")
