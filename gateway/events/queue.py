"""A bounded in-memory queue of events that never blocks its producer.

The DNS loop and the proxy put events here; the writer (gateway/events, issue 8) takes them
in batches. When the queue is full the newest event is dropped and counted: losing a log line
is better than delaying a classroom's DNS answer. The count is shown by ``kalkan status``.
"""

from __future__ import annotations

import threading
from collections import deque

from gateway.events.event import AccessEvent


class EventQueue:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._items: deque[AccessEvent] = deque()
        self.dropped = 0
        self.accepted = 0
        self._lock = threading.Lock()  # deque appends are atomic; the lock guards batch takes

    def put(self, event: AccessEvent) -> bool:
        """Add ``event``; False (and counted) when full. Never blocks, never raises."""
        if len(self._items) >= self.capacity:
            self.dropped += 1
            return False
        self._items.append(event)
        self.accepted += 1
        return True

    def take(self, limit: int = 1000) -> list[AccessEvent]:
        """Up to ``limit`` events, oldest first."""
        with self._lock:
            items = self._items
            n = min(limit, len(items))
            return [items.popleft() for _ in range(n)]

    def __len__(self) -> int:
        return len(self._items)
