"""Requests a student sends from the block page: stored as ``SiteRequest`` rows for the council
(a review of a wrong block, a report of a harmful page, regulation 3.4) and for the teacher (a
lesson allowance).

The proxy never waits for the database in its hot path; these writes are rare (a student
clicking a button) and run in a worker thread. A client may send only so many per hour
(:class:`RequestLimiter`), so a script that posts in a loop fills neither the council's list
nor the database.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from policies.database import utcnow
from policies.models import RequestKind, RequestStatus, SiteRequest

REPEAT_WINDOW = dt.timedelta(hours=1)  # the same request again within it is not stored twice


@dataclass(frozen=True, slots=True)
class SiteRequestDraft:
    """What the block page's form carries (from its signed token) plus what the student wrote."""

    kind: RequestKind
    client: str
    host: str
    url: str | None = None
    device: str | None = None
    room: str | None = None
    group: str | None = None
    session: int | None = None
    category: str | None = None
    reason: str | None = None
    message: str = ""
    language: str | None = None


def store_site_request(sessions: sessionmaker[Session], draft: SiteRequestDraft,
                       now: dt.datetime | None = None) -> tuple[int, bool]:
    """Store ``draft`` unless the same client asked the same about the same host within the
    hour and it is still open; returns (request id, True if stored now)."""
    now = now or utcnow()
    with sessions() as db:
        earlier = db.scalar(
            select(SiteRequest.id).where(
                SiteRequest.client == draft.client, SiteRequest.host == draft.host,
                SiteRequest.kind == draft.kind.value,
                SiteRequest.status == RequestStatus.OPEN.value,
                SiteRequest.created_at >= now - REPEAT_WINDOW)
            .order_by(SiteRequest.id.desc()).limit(1))
        if earlier is not None:
            return earlier, False
        row = SiteRequest(
            kind=draft.kind.value, status=RequestStatus.OPEN.value, created_at=now,
            client=draft.client[:64], device_id=draft.device, room_id=draft.room,
            group_id=draft.group, session_id=draft.session, host=draft.host[:253],
            url=draft.url[:2000] if draft.url else None, category=draft.category,
            reason=draft.reason, message=draft.message[:500], language=draft.language)
        db.add(row)
        db.commit()
        return row.id, True


class RequestLimiter:
    """At most ``per_hour`` requests per client in any hour (a sliding window)."""

    def __init__(self, per_hour: int = 10, *, window: float = 3600.0,
                 max_clients: int = 65536) -> None:
        self.per_hour = per_hour
        self.window = window
        self.max_clients = max_clients
        self._seen: dict[str, deque[float]] = {}

    def allow(self, client: str, now: float | None = None) -> bool:
        """True (and counted) if ``client`` may send one more request now."""
        now = time.monotonic() if now is None else now
        times = self._seen.get(client)
        if times is None:
            if len(self._seen) >= self.max_clients:  # memory stays bounded under a flood
                self._forget(now)
            times = self._seen[client] = deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if len(times) >= self.per_hour:
            return False
        times.append(now)
        return True

    def _forget(self, now: float) -> None:
        idle = [c for c, t in self._seen.items() if not t or now - t[-1] >= self.window]
        for client in idle or list(self._seen):
            del self._seen[client]
