"""kill -9 of a writer during a burst loses at most the last second of events (docs/events.md),
whether it was writing to the database or to the journal; and a full disk loses events
without stopping the filtering, and says how many."""
# ruff: noqa: F811 - the fixtures imported from pipeline_harness are parameters here


from __future__ import annotations

import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dns.message
import dns.query
import pytest
from pipeline_harness import (  # noqa: F401  (fixtures)
    STUDENT_IP,
    TinyUpstream,
    pipeline_config,
    school,
    wait_until,
)
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.dns.service import DnsService
from gateway.events.models import AccessRecord, EventLoss
from gateway.events.queue import EventQueue
from gateway.events.writer import EventWriter, WriterConfig, start_writer

PRODUCER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from gateway.events.event import AccessEvent
    from gateway.events.queue import EventQueue
    from gateway.events.writer import EventWriter, WriterConfig

    url, journal = sys.argv[1], Path(sys.argv[2])
    queue = EventQueue(1_000_000)
    # The documented defaults: flush every 0.25 s, wait 0.3 s at most for the database.
    EventWriter(queue, url, WriterConfig(journal_dir=journal)).start()
    print("ready", flush=True)
    seq = 0
    while True:  # about 10,000 events a second, each with its number and its time
        for _ in range(50):
            queue.put(AccessEvent(time.time(), "dns", "10.10.1.101", f"s{seq}.example",
                                  "block", "category", "games", "A", None, "middle", "lab1",
                                  "lab1-pc01", None, None, 1, False, 0.1))
            seq += 1
        time.sleep(0.005)
""")


def kill_during_burst(url: str, journal: Path, seconds: float = 2.0) -> float:
    child = subprocess.Popen([sys.executable, "-c", PRODUCER, url, str(journal)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(seconds)
    killed_at = time.time()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    return killed_at


def check_at_most_a_second_lost(sessions: sessionmaker[Session], killed_at: float) -> None:
    with sessions() as db:
        rows = db.execute(select(AccessRecord.host, AccessRecord.time)).all()
    numbers = sorted(int(host[1:].split(".")[0]) for host, _ in rows)
    assert numbers, "nothing was written at all"
    assert numbers == list(range(len(numbers))), "a hole: events lost before the last ones"
    newest = max(t for _, t in rows).replace(tzinfo=dt.UTC).timestamp()
    lost_window = killed_at - newest
    assert lost_window <= 1.0, f"the last {lost_window:.2f} s before the kill were lost"


def test_kill_9_while_writing_to_the_database(sessions: sessionmaker[Session],
                                              sqlite_url: str, tmp_path: Path) -> None:
    killed_at = kill_during_burst(sqlite_url, tmp_path / "journal")
    check_at_most_a_second_lost(sessions, killed_at)


def test_kill_9_while_writing_to_the_journal(sessions: sessionmaker[Session],
                                             sqlite_url: str, tmp_path: Path) -> None:
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0)
    locker.execute("BEGIN EXCLUSIVE")  # the database is locked for the whole burst
    try:
        killed_at = kill_during_burst(sqlite_url, tmp_path / "journal")
    finally:
        locker.rollback()
        locker.close()
    assert list((tmp_path / "journal").glob("*.journal"))
    # Whoever starts next replays what the dead writer left, then it is all in the database.
    config = WriterConfig(journal_dir=tmp_path / "journal")
    EventWriter(EventQueue(), sqlite_url, config).replay_now()
    assert list((tmp_path / "journal").glob("*.journal")) == []
    check_at_most_a_second_lost(sessions, killed_at)


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_loses_events_but_never_the_filtering_and_says_how_many(
        school, tmp_path: Path, tiny_disk: Path) -> None:
    upstream = TinyUpstream().start()
    config = pipeline_config(tiny_disk, dns={"upstreams": [upstream.address]})
    queue = EventQueue()
    dns_service = DnsService(config, school, listen=[("127.0.0.1", 0)],
                             events=queue).start_in_thread()
    writer = start_writer(config, school, queue, process="dns")
    db_file = str(school.kw["bind"].url.database)
    locker = sqlite3.connect(db_file, timeout=0)
    locker.execute("BEGIN EXCLUSIVE")  # the database is away, and the journal's disk fills
    try:
        answered = 0
        for i in range(400):  # every query is still answered, blocked ones with the block page
            query = dns.message.make_query(f"site{i}.pornhub.com", "A")
            answer = dns.query.udp(query, "127.0.0.1", port=dns_service.bound[0][1],
                                   timeout=2, source=STUDENT_IP)
            answered += answer.answer[0][0].to_text() == "127.0.0.1"
        assert answered == 400
        assert wait_until(lambda: writer.stats.taken == queue.accepted and writer.stats.lost)
        assert writer.stats.journaled > 0  # the first batches fitted on the disk
    finally:
        locker.rollback()
        locker.close()
    writer._next_probe = 0
    assert wait_until(lambda: not writer.journaling and not writer.stats.losses)
    writer.stop()
    dns_service.stop_thread()
    upstream.stop()
    with school() as db:
        stored = len(db.scalars(select(AccessRecord.id).where(
            AccessRecord.category == "adult")).all())
        losses = db.scalars(select(EventLoss)).all()
    assert sum(loss.count for loss in losses) == writer.stats.lost
    assert {loss.cause for loss in losses} == {"disk_full"}
    assert stored + writer.stats.lost == 400  # each event either kept or counted as lost
