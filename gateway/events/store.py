"""Putting event rows into the database: batched inserts, count upserts, journal replay.

The writer's rows are plain tuples with the time as epoch seconds, the same in memory and in
the journal; they are converted to the dialect's form only here, just before the insert.
Raw ``executemany`` through the connection: the ORM would cost more than the whole insert.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from gateway.events.journal import locked_segment, read_records
from gateway.events.rollup import RollupStatements, add_batch
from policies.database import utcnow

log = logging.getLogger(__name__)

EVENT_COLUMNS = ("time", "channel", "client", "host", "action", "reason", "category", "qtype",
                 "url", "group_id", "room_id", "device_id", "session_id", "class_id",
                 "student_id", "rule", "revision", "bypass", "latency_ms", "referrer", "noise",
                 "flag")
COUNT_COLUMNS = ("minute", "client", "host", "count", "category", "group_id", "room_id",
                 "device_id", "class_id", "student_id")

EPOCH = dt.datetime(1970, 1, 1)
_SECOND = dt.timedelta(seconds=1)


def writer_engine(url: str, timeout: float) -> Engine:
    """The writer's own engine: it waits at most ``timeout`` for a lock, then journals.

    SQLite commits with ``synchronous=FULL`` here (the rest of kalkan uses NORMAL): a commit
    the writer has made survives a power cut, which is what docs/events.md promises.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        return engine
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    ms = max(int(timeout * 1000), 50)
    # Keep the URL's own options: a school of a district names its schema there.
    options = f"{parsed.query.get('options', '')} -c lock_timeout={ms} " \
              f"-c statement_timeout={ms * 10}"
    return create_engine(parsed.difference_update_query(["options", "connect_timeout"]),
                         pool_pre_ping=True, connect_args={
                             "connect_timeout": 2, "options": options.strip()})


class SqlDialect:
    """The statements for one database, and how its rows want their times."""

    def __init__(self, name: str) -> None:
        self.name = name
        mark = "?" if name == "sqlite" else "%s"
        self.insert_events = (f"INSERT INTO access_events ({', '.join(EVENT_COLUMNS)}) VALUES "
                              f"({', '.join([mark] * len(EVENT_COLUMNS))})")
        self.copy_events = f"COPY access_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
        self.upsert_counts = (
            f"INSERT INTO allowed_counts ({', '.join(COUNT_COLUMNS)}) VALUES "
            f"({', '.join([mark] * len(COUNT_COLUMNS))}) ON CONFLICT (minute, client, host) "
            f"DO UPDATE SET count = allowed_counts.count + excluded.count")
        self.upsert_mark = (
            f"INSERT INTO journal_marks (segment, position, updated_at) VALUES ({mark}, {mark}, "
            f"{mark}) ON CONFLICT (segment) DO UPDATE SET position = excluded.position, "
            f"updated_at = excluded.updated_at")
        self.select_mark = f"SELECT position FROM journal_marks WHERE segment = {mark}"
        self.delete_mark = f"DELETE FROM journal_marks WHERE segment = {mark}"
        self.rollup = RollupStatements(name)
        self._second: int = -1
        self._prefix = ""

    def timestamp(self, epoch: float) -> Any:
        """The database form of a naive UTC time: SQLAlchemy's text on SQLite (so that ORM
        reads parse it), a datetime for psycopg."""
        if self.name != "sqlite":
            return EPOCH + dt.timedelta(seconds=epoch)
        second = int(epoch)
        if second != self._second:  # events come in time order: format once a second
            self._second = second
            self._prefix = (EPOCH + second * _SECOND).strftime("%Y-%m-%d %H:%M:%S")
        return f"{self._prefix}.{int((epoch - second) * 1e6):06d}"

    def event_rows(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        stamp = self.timestamp
        return [(stamp(r[0]), *r[1:]) for r in rows]

    def count_rows(self, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        stamp = self.timestamp
        return [(stamp(r[0]), *r[1:]) for r in rows]


def insert_batch(conn: Connection, dialect: SqlDialect, events: Sequence[Sequence[Any]],
                 counts: Sequence[Sequence[Any]]) -> None:
    """Insert event rows and add count rows, and their hourly counts (the dashboard's),
    inside the caller's transaction."""
    if events and dialect.name == "postgresql":
        # COPY: a quarter less server CPU per row than executemany (bench/district_bench.py).
        raw = conn.connection.dbapi_connection
        with raw.cursor() as cur, cur.copy(dialect.copy_events) as copy:  # type: ignore[union-attr]
            for row in dialect.event_rows(events):
                copy.write_row(row)
    elif events:
        conn.exec_driver_sql(dialect.insert_events, dialect.event_rows(events))
    if counts:
        conn.exec_driver_sql(dialect.upsert_counts, dialect.count_rows(counts))
    add_batch(conn, dialect.rollup, dialect.timestamp, events, counts)


def replay_segment(engine: Engine, dialect: SqlDialect, path: Path, *,
                   records_per_transaction: int = 20, deadline: float | None = None,
                   clock: Any = None) -> tuple[str, int]:
    """Replay one closed segment into the database, exactly once; ``(state, events)``, state
    ``done``, ``partial`` (out of time) or ``busy`` (its writer still has it open).

    Each transaction inserts some records' rows *and* moves the segment's mark to the end of
    the last of them, so a crash or a lost database at any moment leaves the rows and the
    mark agreeing: the next replay starts where the committed one ended. The file is removed
    only after its last mark is committed; a mark whose file is gone is harmless.
    ``deadline`` (a ``clock()`` value) stops early so that the writer can serve its queue.
    """
    clock = clock or time.monotonic
    replayed = 0
    with locked_segment(path) as fd:
        if fd is None:
            return "busy", 0
        with engine.connect() as conn:
            start = conn.exec_driver_sql(dialect.select_mark, (path.name,)).scalar() or 0
        records = read_records(fd, start)
        finished = False
        while not finished:
            chunk: list[tuple[int, dict[str, Any]]] = []
            for item in records:
                chunk.append(item)
                if len(chunk) >= records_per_transaction:
                    break
            else:
                finished = True
            if chunk:
                with engine.begin() as conn:
                    for _, payload in chunk:
                        key = payload.get("k")
                        if key is not None and conn.exec_driver_sql(
                                dialect.select_mark, (key,)).scalar() is not None:
                            # Its direct commit went through; only the answer was lost.
                            conn.exec_driver_sql(dialect.delete_mark, (key,))
                            continue
                        insert_batch(conn, dialect, payload.get("e", ()), payload.get("c", ()))
                        replayed += len(payload.get("e", ()))
                    conn.exec_driver_sql(dialect.upsert_mark, (
                        path.name, chunk[-1][0], dialect.timestamp(time.time())))
            if not finished and deadline is not None and clock() > deadline:
                return "partial", replayed
        path.unlink()
    with engine.begin() as conn:
        conn.exec_driver_sql(dialect.delete_mark, (path.name,))
    return "done", replayed


def record_losses(conn: Connection, losses: Sequence[dict[str, Any]], process: str) -> None:
    """Store loss reports (``kalkan logs summary`` shows them)."""
    from gateway.events.models import EventLoss

    if not losses:
        return
    now = utcnow()
    conn.execute(EventLoss.__table__.insert(), [
        {"reported_at": now, "first_at": EPOCH + dt.timedelta(seconds=loss["first"]),
         "last_at": EPOCH + dt.timedelta(seconds=loss["last"]), "count": loss["count"],
         "cause": loss["cause"], "detail": loss.get("detail", "")[:2000], "process": process}
        for loss in losses])


def immediate_sessions(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions whose transactions take SQLite's write lock when they begin.

    A transaction that reads and then writes (the detector, the notifier) fails at its first
    write with "database is locked" if the event writer committed after its read began
    (WAL snapshots cannot be upgraded). Taking the lock at BEGIN makes it wait its turn
    instead, for at most the busy timeout. PostgreSQL needs nothing of the kind.
    """
    bind = sessions.kw["bind"]
    if bind.dialect.name != "sqlite":
        return sessions
    engine = create_engine(bind.url, connect_args={"timeout": 10, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # SQLAlchemy's BEGIN below, not the driver's
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return sessionmaker(engine, expire_on_commit=False)
