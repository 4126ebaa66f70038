"""Opens the timetable's lessons on time, in ``kalkan run``'s process (one per installation)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from gateway.polling import PollingThread
from policies.timetable import open_due_lessons


class TimetableOpener(PollingThread):
    """Every ``interval`` seconds, open the sessions of the lessons that have begun."""

    thread_name = "kalkan-timetable"

    def __init__(self, sessions: sessionmaker[Session], interval: float = 10.0) -> None:
        super().__init__()
        self.sessions = sessions
        self.interval = interval
        self.opened = 0

    def run_round(self) -> None:
        with self.sessions() as db:
            self.opened += len(open_due_lessons(db))
