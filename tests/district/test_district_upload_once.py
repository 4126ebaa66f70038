"""A school gateway's batch whose COMMIT reached the district database but whose answer was
lost with the link: the writer journals it (it cannot know), and the replay stores it once."""

from __future__ import annotations

import time
from pathlib import Path

from pipeline_harness import event
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from gateway.events.models import AccessRecord
from gateway.events.queue import EventQueue
from gateway.events.writer import EventWriter, WriterConfig


def _blocked(n: int, marker: str) -> list:
    t0 = time.time()
    return [event(f"n{i}.{marker}", t=t0 + i * 1e-3, action="block", category="games",
                  reason="category") for i in range(n)]


def _stored(sessions: sessionmaker[Session], marker: str) -> int:
    with sessions() as db:
        return db.scalar(select(func.count()).select_from(AccessRecord).where(
            AccessRecord.host.like(f"%.{marker}"))) or 0


def test_a_committed_batch_whose_answer_was_lost_is_not_stored_twice(
        sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path) -> None:
    writer = EventWriter(EventQueue(), sqlite_url, WriterConfig(journal_dir=tmp_path / "j"),
                         sessions=sessions)
    rows, counts, counted = writer.prepare(_blocked(25, "lost-answer.test"))
    writer.write_direct(rows, counts, "batch-lost-answer")  # the server committed it …
    writer._to_journal(rows, counts, counted, "batch-lost-answer")  # … the writer never knew
    # A batch that really failed, journalled with its own key, and one journalled plain.
    rows2, counts2, counted2 = writer.prepare(_blocked(7, "failed.test"))
    writer._to_journal(rows2, counts2, counted2, "batch-never-committed")
    rows3, counts3, counted3 = writer.prepare(_blocked(3, "while-away.test"))
    writer._to_journal(rows3, counts3, counted3)
    writer.replay_now()
    assert _stored(sessions, "lost-answer.test") == 25
    assert _stored(sessions, "failed.test") == 7
    assert _stored(sessions, "while-away.test") == 3
    # Keys go once they have served: only the last acknowledged batch's key is kept.
    with sessions() as db:
        keys = db.execute(text("SELECT segment FROM journal_marks")).scalars().all()
    assert keys == []  # the replay removed the lost batch's key; no other key was committed
    writer.write_direct(*writer.prepare(_blocked(2, "next.test"))[:2], "batch-next")
    writer.write_direct(*writer.prepare(_blocked(2, "after.test"))[:2], "batch-after")
    with sessions() as db:
        assert db.execute(text("SELECT segment FROM journal_marks")).scalars().all() == [
            "batch-after"]
