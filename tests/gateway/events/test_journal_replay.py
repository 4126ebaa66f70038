"""The database locked or gone during a burst: the events go to the journal and come back,
each exactly once."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from pipeline_harness import event
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.events.event import Channel
from gateway.events.journal import Journal, read_records
from gateway.events.models import AccessRecord, AllowedCount, EventLoss
from gateway.events.queue import EventQueue
from gateway.events.store import SqlDialect, replay_segment, writer_engine
from gateway.events.writer import EventWriter, WriterConfig
from policies.database import migrate, open_engine, session_factory


def burst(queue: EventQueue, n: int, start: int = 0) -> None:
    """n events: every third allowed (counted per minute), the rest blocked (kept)."""
    t0 = time.time()
    for i in range(start, start + n):
        allowed = i % 3 == 0
        queue.put(event(f"site{i}.example" if not allowed else "lib.kg", t=t0 + i * 1e-4,
                        action="allow" if allowed else "block",
                        category="education" if allowed else "games",
                        reason="category", channel=Channel.TLS))


def totals(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """(blocked rows, allowed events counted)."""
    with sessions() as db:
        return (db.scalar(select(func.count()).select_from(AccessRecord)) or 0,
                db.scalar(select(func.sum(AllowedCount.count))) or 0)


def make_writer(url: str, tmp_path: Path, queue: EventQueue,
                sessions: sessionmaker[Session] | None = None) -> EventWriter:
    config = WriterConfig(journal_dir=tmp_path / "journal", flush_interval=0.05,
                          database_timeout=0.1)
    return EventWriter(queue, url, config, sessions=sessions)


def test_a_locked_database_sends_the_burst_to_the_journal_and_back_exactly_once(
        sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path) -> None:
    queue = EventQueue()
    writer = make_writer(sqlite_url, tmp_path, queue, sessions)
    burst(queue, 300)
    writer.flush()
    assert totals(sessions) == (200, 100)

    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    locker.execute("BEGIN EXCLUSIVE")  # an admin page's long transaction, say
    for round_ in range(5):  # a burst spread over several flushes, all while locked
        burst(queue, 600, start=1000 * (round_ + 1))
        started = time.monotonic()
        writer.flush()
        assert time.monotonic() - started < 1.0  # never waits longer than database_timeout
    assert writer.journaling and writer.stats.journaled == 3000
    assert len(list((tmp_path / "journal").glob("*.journal"))) == 1
    locker.rollback()
    locker.close()

    writer.replay_now()
    assert not writer.journaling and list((tmp_path / "journal").glob("*.journal")) == []
    assert totals(sessions) == (200 + 2000, 100 + 1000)
    writer.replay_now()  # nothing twice
    burst(queue, 30, start=9000)
    writer.flush()  # and direct writes again
    assert totals(sessions) == (2220, 1110)
    assert writer.stats.lost == 0


@pytest.mark.postgres
def test_postgresql_gone_during_a_burst_then_back(postgres_url: str, postgres_server,
                                                   tmp_path: Path) -> None:
    engine = open_engine(postgres_url)
    migrate(engine)
    sessions = session_factory(engine)
    queue = EventQueue()
    writer = make_writer(postgres_url, tmp_path, queue, sessions)
    burst(queue, 90)
    writer.flush()
    name = engine.url.database
    sockdir, port = postgres_server

    def psql(sql: str) -> None:
        subprocess.run(["psql", "-h", sockdir, "-p", str(port), "-U", "postgres", "-c", sql],
                       check=True, capture_output=True)

    psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
    psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    try:
        for round_ in range(3):
            burst(queue, 300, start=1000 * (round_ + 1))
            writer.flush()
        assert writer.journaling and writer.stats.journaled == 900
    finally:
        psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    writer._next_probe = 0  # the next round tries the database at once
    writer.flush()
    assert not writer.journaling
    assert totals(sessions) == (60 + 600, 30 + 300)


def test_an_interrupted_replay_goes_on_where_it_stopped(
        sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal", 1 << 30)
    queue = EventQueue()
    writer = make_writer(sqlite_url, tmp_path, queue, sessions)
    for i in range(10):
        rows, counts, _ = writer.prepare([event(f"x{i}-{k}.example") for k in range(10)])
        journal.append({"e": rows, "c": counts})
    segment = journal.close_active()
    assert segment is not None
    with segment.open("ab") as out:  # a crash in the middle of the 11th write
        out.write(b"\x00\x00\x01\x00garbage")

    engine = writer_engine(sqlite_url, 1.0)
    dialect = SqlDialect("sqlite")
    ticks = iter(range(1, 100))  # the clock has run out after the first transaction
    state, n = replay_segment(engine, dialect, segment, records_per_transaction=3,
                              deadline=0.5, clock=lambda: next(ticks))
    assert (state, n) == ("partial", 30)
    assert totals(sessions)[0] == 30
    state, n = replay_segment(engine, dialect, segment, records_per_transaction=3)
    assert (state, n) == ("done", 70)  # the rest, not the first 30 again; not the torn tail
    assert totals(sessions)[0] == 100 and not segment.exists()
    with sessions() as db:
        assert db.execute(text("SELECT COUNT(*) FROM journal_marks")).scalar() == 0


def test_a_segment_still_being_written_is_left_to_its_writer(tmp_path: Path,
                                                              sqlite_url: str,
                                                              sessions) -> None:
    journal = Journal(tmp_path / "journal", 1 << 30)
    journal.append({"e": [], "c": []})
    assert journal.active is not None
    state, _ = replay_segment(writer_engine(sqlite_url, 1.0), SqlDialect("sqlite"),
                              journal.active)
    assert state == "busy"
    fd = __import__("os").open(journal.active, __import__("os").O_RDONLY)
    assert [end for end, _ in read_records(fd, 0)] == [journal.active.stat().st_size]


def test_queue_overflow_is_reported_as_a_loss(sessions: sessionmaker[Session],
                                              sqlite_url: str, tmp_path: Path) -> None:
    queue = EventQueue(capacity=100)
    writer = make_writer(sqlite_url, tmp_path, queue, sessions)
    burst(queue, 150)
    assert queue.dropped == 50
    writer.flush()
    with sessions() as db:
        [loss] = db.scalars(select(EventLoss)).all()
    assert (loss.cause, loss.count) == ("queue_full", 50)
