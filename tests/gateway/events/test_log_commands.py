"""`kalkan logs …` and `kalkan alerts list` on a filled log; retention, export and erasure;
the same writer and detector on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import yaml
from click.testing import CliRunner
from pipeline_harness import event
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.models import Alert
from gateway.alerts.service import AlertService
from gateway.cli import main
from gateway.config import Config
from gateway.events.event import Channel
from gateway.events.models import AccessRecord, AllowedCount
from gateway.events.queue import EventQueue
from gateway.events.retention import purge
from gateway.events.writer import EventWriter, WriterConfig
from policies.database import migrate, open_engine, session_factory, utcnow
from policies.demo import seed_demo
from policies.models import Student


def fill(sessions: sessionmaker[Session], url: str, tmp_path: Path,
         allowed_events: str = "counts") -> EventWriter:
    """Aibek (consent) at lab1-pc01 in 7B's session tries adult sites; lab1-pc02 plays."""
    with sessions() as db:
        db.execute(update(Student).where(Student.name == "Aibek Usenov").values(
            device_id="lab1-pc01"))
        db.commit()
    queue = EventQueue()
    writer = EventWriter(queue, url, WriterConfig(journal_dir=tmp_path / "journal",
                                                  allowed_events=allowed_events),
                         sessions=sessions)
    # Five seconds into the previous minute: the allowed requests (t … t + 4) share one
    # per-minute count whatever the clock says when the test runs.
    t = (time.time() // 60 - 1) * 60 + 5
    for i, host in enumerate(["pornhub.com", "xvideos.com", "xhamster.com"]):
        queue.put(event(host, t=t + 10 * i))
        queue.put(event(host, t=t + 10 * i + 0.1, channel=Channel.TLS))
    for i in range(5):
        queue.put(event("lib.kg", t=t + i, action="allow", category="education",
                        reason="category"))
        queue.put(event("roblox.com", t=t + i, client="10.10.1.102", device="lab1-pc02",
                        category="games", reason="category"))
    writer.flush()
    return writer


def kalkan(tmp_path: Path, url: str, *args: str) -> str:
    config = tmp_path / "kalkan.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"),
                                      "database": {"url": url}}))
    result = CliRunner().invoke(main, ["--config", str(config), *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_search_summary_alerts_export_and_erase(demo, sqlite_url: str, tmp_path: Path) -> None:
    fill(demo, sqlite_url, tmp_path)
    AlertService(demo, Config()).poll()
    with demo() as db:
        aibek = db.scalar(select(Student.id).where(Student.name == "Aibek Usenov"))
        stored = db.scalars(select(AccessRecord)).all()
    # No session is open: the class is the student's; the student is named (consent).
    assert {(e.student_id, e.class_id) for e in stored if e.device_id == "lab1-pc01"} == {
        (aibek, "7B")}
    assert {(e.student_id, e.class_id) for e in stored if e.device_id == "lab1-pc02"} == {
        (None, None)}
    out = kalkan(tmp_path, sqlite_url, "logs", "search", "--category", "adult")
    assert out.count("pornhub.com") == 2 and "roblox.com" not in out
    out = kalkan(tmp_path, sqlite_url, "logs", "search", "--client", "10.10.1.102",
                 "--since", "1h")
    assert out.count("roblox.com") == 5
    summary = kalkan(tmp_path, sqlite_url, "logs", "summary")
    assert "pornhub.com" in summary and "adult" in summary and "alerts: 1" in summary
    assert "allowed requests: 5" in summary
    alerts = kalkan(tmp_path, sqlite_url, "alerts", "list")
    assert "repeated_attempts" in alerts and f"student #{aibek}" in alerts
    csv_text = kalkan(tmp_path, sqlite_url, "logs", "export", "--student", "Aibek Usenov")
    assert csv_text.count("\nevent,") == 6 and "\nalert," in csv_text
    assert "\nallowed_count," in csv_text
    out = kalkan(tmp_path, sqlite_url, "logs", "erase", "--student", str(aibek), "--yes")
    assert "erased 6 events, 1 allowed counts and 1 alerts" in out
    with demo() as db:
        assert db.scalar(select(func.count()).select_from(AccessRecord)) == 5  # lab1-pc02's
        assert db.scalar(select(func.count()).select_from(Alert)) == 0


def test_retention_purges_by_kind_and_caps_the_size_but_keeps_the_legal_minimum(
        demo, sqlite_url: str, tmp_path: Path) -> None:
    fill(demo, sqlite_url, tmp_path, allowed_events="full")
    with demo() as db:  # half the records are 40 days old
        old = utcnow() - dt.timedelta(days=40)
        ids = db.scalars(select(AccessRecord.id).order_by(AccessRecord.id)).all()
        db.execute(update(AccessRecord).where(AccessRecord.id.in_(ids[::2])).values(time=old))
        db.commit()
    retention = Config().retention
    result = purge(demo, retention, pause=0)
    with demo() as db:
        left = db.scalar(select(func.count()).select_from(AccessRecord))
    assert left == len(ids) - len(ids[::2]) and "blocked events" in str(result)
    with demo() as db:
        recent = db.scalar(select(func.count()).select_from(AccessRecord))
    capped = retention.model_copy(update={"max_event_store_mb": 0})
    purge(demo, capped, pause=0)  # 0: no cap
    tiny = retention.model_copy(update={"max_event_store_mb": 1, "minimum_days": 0})
    with demo() as db:  # make the log bigger than 1 MB
        db.execute(AccessRecord.__table__.insert(), [
            {"time": utcnow() - dt.timedelta(days=2), "channel": "dns", "client": "10.0.0.1",
             "host": f"filler{i}.example" + "x" * 200, "action": "block", "reason": "category",
             "bypass": False} for i in range(8000)])
        db.commit()
    protected = tiny.model_copy(update={"minimum_days": 7})
    purge(demo, protected, pause=0)  # everything is younger than 7 days: nothing goes
    with demo() as db:
        assert db.scalar(select(func.count()).select_from(AccessRecord)) == left + 8000
    result = purge(demo, tiny, pause=0)
    assert result.store_bytes is not None and result.store_bytes <= 1 << 20
    with demo() as db:  # the oldest (the two-day-old filler) went first
        assert db.scalar(select(func.count()).select_from(AccessRecord).where(
            AccessRecord.client != "10.0.0.1")) == recent


def test_the_same_pipeline_on_sqlite_and_postgresql(any_db_url: str, tmp_path: Path) -> None:
    engine = open_engine(any_db_url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as db:
        seed_demo(db)
    writer = fill(sessions, any_db_url, tmp_path)
    writer.flush()
    service = AlertService(sessions, Config())
    assert service.poll() == 11
    service = AlertService(sessions, Config())  # a restart: nothing twice
    assert service.poll() == 0
    with sessions() as db:
        [alert] = db.scalars(select(Alert)).all()
        counts = db.scalar(select(func.sum(AllowedCount.count)))
    assert (alert.category, alert.attempts, counts) == ("adult", 3, 5)
    shutil.rmtree(tmp_path / "journal", ignore_errors=True)
