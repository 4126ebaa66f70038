"""Events and alerts for the dashboard, log and security tests, written the way the gateway
writes them (the real event writer), so the hourly counts are the writer's own.

A plugin module (PYTEST_DONT_REWRITE): loaded with ``pytest_plugins``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.models import Alert, AlertEvidence
from gateway.events.event import AccessEvent, Channel
from gateway.events.queue import EventQueue
from gateway.events.writer import EventWriter, WriterConfig
from policies.database import utcnow


def blocked(host: str, category: str = "games", *, client: str = "10.10.1.101",
            device: str = "lab1-pc01", at: float | None = None, channel: Channel = Channel.DNS,
            bypass: bool = False, **more: Any) -> AccessEvent:
    return AccessEvent(time.time() if at is None else at, channel, client, host, "block",
                       "category", category, "A", None, "middle", "lab1", device, None,
                       "rule", 1, bypass, 0.3, **more)


def allowed(host: str, *, client: str = "10.10.1.101", at: float | None = None,
            ) -> AccessEvent:
    return AccessEvent(time.time() if at is None else at, Channel.DNS, client, host, "allow",
                       "category", "education", "A", None, "middle", "lab1", "lab1-pc01")


def write_events(sessions: sessionmaker[Session], url: str, events: list[AccessEvent],
                 workdir: Path, allowed_events: str = "counts") -> None:
    queue = EventQueue(len(events) + 1)
    for e in events:
        queue.put(e)
    writer = EventWriter(queue, url, WriterConfig(journal_dir=workdir / "journal",
                                                  allowed_events=allowed_events),
                         sessions=sessions)
    writer.directory.refresh()
    while len(queue):
        writer.flush()
    assert writer.stats.journaled == 0 and writer.stats.lost == 0, writer.stats


def add_alert(db: Session, *, class_id: str | None, host: str, device: str = "lab1-pc01",
              attempts: int = 3, category: str = "adult") -> Alert:
    now = utcnow()
    alert = Alert(dedup_key=f"{device}|{category}|{host}|{class_id}", rule="repeated_attempts",
                  category=category, severity="high", created_at=now, updated_at=now,
                  first_seen=now, last_seen=now, attempts=attempts, client="10.10.1.101",
                  device_id=device, class_id=class_id, room_id="lab1", sites=[host])
    db.add(alert)
    db.flush()
    for i in range(attempts):
        db.add(AlertEvidence(alert_id=alert.id, event_id=alert.id * 1000 + i, time=now,
                             channel="dns", host=host, category=category, action="block"))
    db.commit()
    return alert
