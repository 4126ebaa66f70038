"""Who is behind an event: the class and, only with recorded consent, the student.

The decision already names the device, room, group and session. The class comes from the
session (the class the teacher opened it for), else from the students registered on the
device. A student is named only where exactly one student fits and that student's written
consent is recorded (regulations 2.14–2.17); otherwise the record says device, room and
class. Read from the database every few seconds; a failed read keeps the last answer.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from policies.models import InternetSession, Student

log = logging.getLogger(__name__)

REFRESH_SECONDS = 5.0


class Directory:
    def __init__(self, sessions: sessionmaker[Session] | None) -> None:
        self.sessions = sessions
        self.session_class: dict[int, str | None] = {}
        # device → [(student id or None without consent, class id)]
        self.device_students: dict[str, list[tuple[int | None, str]]] = {}
        self._memo: dict[tuple[Any, Any], tuple[str | None, int | None]] = {}
        self._loaded = 0.0
        self._missed = 0.0

    def refresh(self) -> bool:
        if self.sessions is None:
            return False
        try:
            with self.sessions() as db:
                session_class = dict(db.execute(select(InternetSession.id,
                                                       InternetSession.class_id)).all())
                device_students: dict[str, list[tuple[int | None, str]]] = defaultdict(list)
                for sid, class_id, device, consent in db.execute(select(
                        Student.id, Student.class_id, Student.device_id,
                        Student.consent_recorded_on).where(Student.device_id.is_not(None))):
                    device_students[device].append((sid if consent else None, class_id))
        except Exception as exc:  # the database may be away: keep enriching from what we know
            log.debug("directory refresh failed: %s", exc)
            self._loaded = time.monotonic()
            return False
        self.session_class = session_class
        self.device_students = dict(device_students)
        self._memo = {}
        self._loaded = time.monotonic()
        return True

    def maybe_refresh(self) -> None:
        if time.monotonic() - self._loaded >= REFRESH_SECONDS:
            self.refresh()

    def lookup(self, device: str | None, session: int | None) -> tuple[str | None, int | None]:
        """``(class id, student id)`` for an event of ``device`` in ``session``."""
        key = (device, session)
        found = self._memo.get(key)
        if found is not None:
            return found
        if session is not None and session not in self.session_class \
                and time.monotonic() - self._missed > 1.0:
            self._missed = time.monotonic()  # a session opened since the last read
            self.refresh()
        class_id = self.session_class.get(session) if session is not None else None
        student = None
        candidates = self.device_students.get(device, ()) if device else ()
        if class_id is not None:
            candidates = [c for c in candidates if c[1] == class_id]
        if len(candidates) == 1:
            student, student_class = candidates[0]
            class_id = class_id or student_class
        elif class_id is None and candidates and len({c[1] for c in candidates}) == 1:
            class_id = candidates[0][1]  # a shared computer of one class: the class is known
        found = (class_id, student)
        self._memo[key] = found
        return found
