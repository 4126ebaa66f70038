"""The batched writer: from the in-memory :class:`EventQueue` to the database, or the journal.

One writer thread per process that produces events (each DNS worker, each proxy process).
Every ``flush_interval`` it takes what the queue holds and

1. marks noise (:mod:`gateway.alerts.noise`) and listed search terms, and adds the class and
   (with consent) the student (:mod:`gateway.events.directory`);
2. keeps every blocked event, every flagged one, and allowed ones as ``retention.
   allowed_events`` says (off, per-minute counts, or full);
3. writes them in one transaction, waiting at most ``database_timeout`` for a lock;
4. if the database is locked or away, appends the batch to the journal (fsync) instead,
   and keeps doing so until a replay of the whole journal succeeds;
5. if the journal cannot be written either (disk full, its size limit), counts the events as
   lost and stores a loss report once the database takes writes again.

What a crash can lose is in docs/events.md: the events taken from the queue but not yet
committed or fsynced, which are at most ``flush_interval`` + 2 × ``database_timeout`` old.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.alerts.noise import NoiseFilter
from gateway.alerts.search_terms import SearchTerms, shipped_terms
from gateway.events.directory import Directory
from gateway.events.event import AccessEvent
from gateway.events.journal import Journal, JournalFull
from gateway.events.models import Flag
from gateway.events.queue import EventQueue
from gateway.events.store import (
    SqlDialect,
    insert_batch,
    record_losses,
    replay_segment,
    writer_engine,
)

log = logging.getLogger(__name__)

MAX_BATCH = 50_000  # events per transaction; the queue holds 100,000 by default
PROBE_SECONDS = 1.0  # while journaling: how often to try the database again
STATUS_SECONDS = 3.0
_ALLOW = "allow"


@dataclass(frozen=True, slots=True)
class WriterConfig:
    journal_dir: Path
    flush_interval: float = 0.25
    database_timeout: float = 0.3
    journal_max_bytes: int = 1024 << 20
    allowed_events: str = "counts"  # off, counts, full
    third_party_seconds: float = 2.0
    noise_domains: tuple[str, ...] = ()
    search_terms: tuple[str, ...] = ()
    status_path: Path | None = None
    process: str = "gateway"

    @classmethod
    def from_config(cls, config: Any, process: str = "gateway") -> WriterConfig:
        """The writer's settings from kalkan.yaml (``events``, ``retention``, ``alerts``)."""
        terms = list(config.alerts.search_terms)
        if config.alerts.shipped_search_terms:
            terms += shipped_terms()
        data_dir = Path(config.data_dir)
        return cls(
            journal_dir=data_dir / "journal",
            flush_interval=config.events.flush_interval,
            database_timeout=config.events.database_timeout,
            journal_max_bytes=config.events.journal_max_mb << 20,
            allowed_events=config.retention.allowed_events,
            third_party_seconds=config.events.third_party_seconds,
            noise_domains=tuple(config.alerts.noise_domains),
            search_terms=tuple(terms) if config.alerts.enabled else (),
            status_path=Path(config.status_directory) / f"events-{process}.json",
            process=process,
        )


@dataclass
class WriterStats:
    """What the writer did since it started; ``kalkan logs status`` and the tests read it."""

    taken: int = 0  # events taken from the queue
    stored: int = 0  # event rows committed directly
    counted: int = 0  # allowed events folded into per-minute counts (committed directly)
    skipped: int = 0  # allowed events not kept (allowed_events: off)
    journaled: int = 0  # events appended to the journal (rows and counted ones)
    replayed: int = 0  # event rows replayed from the journal
    lost: int = 0  # events that could be kept nowhere
    batches: int = 0
    database_failures: int = 0
    last_error: str = ""
    journaling: bool = False
    losses: list[dict[str, Any]] = field(default_factory=list)  # not yet reported

    def as_dict(self, queue: EventQueue) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "losses"}
        data.update(queued=len(queue), queue_dropped=queue.dropped, updated=time.time(),
                    unreported_losses=sum(loss["count"] for loss in self.losses))
        return data


class EventWriter:
    def __init__(self, queue: EventQueue, url: str | Engine, config: WriterConfig, *,
                 sessions: sessionmaker[Session] | None = None) -> None:
        self.queue = queue
        self.config = config
        self.engine = url if isinstance(url, Engine) else writer_engine(url,
                                                                      config.database_timeout)
        self.dialect = SqlDialect(self.engine.dialect.name)
        self.journal = Journal(config.journal_dir, config.journal_max_bytes)
        self.noise = NoiseFilter.with_shipped_list(config.noise_domains,
                                                   config.third_party_seconds)
        self.terms = SearchTerms(config.search_terms)
        self.directory = Directory(sessions)
        self.stats = WriterStats()
        self._reported_drops = queue.dropped
        self._next_probe = 0.0
        self._next_status = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one flush at a time (the thread, or a test calling)
        self.journaling = bool(self.journal.segments())  # an earlier run left some behind
        self._acknowledged: str | None = None  # key of the last batch known committed

    # --- running ----------------------------------------------------------------------------

    def start(self) -> EventWriter:
        self.directory.refresh()
        name = f"kalkan-events-{self.config.process}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Flush what is queued and stop; a journal left behind is replayed at next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.journal.close_active()

    def _run(self) -> None:
        interval = self.config.flush_interval
        while True:
            started = time.monotonic()
            stopping = self._stop.is_set()
            try:
                self.flush()
            except Exception:  # the writer must outlive any surprise; events stay queued
                log.exception("event writer: flush failed")
            if stopping and not len(self.queue):
                return
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

    # --- one round --------------------------------------------------------------------------

    def flush(self) -> int:
        """Take everything queued and keep it somewhere; returns the number of events taken."""
        with self._lock:
            taken = 0
            while True:
                batch = self.queue.take(MAX_BATCH)
                if batch:
                    taken += len(batch)
                    self._keep(batch)
                if len(batch) < MAX_BATCH:
                    break
            if self.journaling and time.monotonic() >= self._next_probe:
                self._try_replay()
            self._note_drops()
            if self.stats.losses and not self.journaling:
                self._report_losses()
            if self.config.status_path is not None and time.monotonic() >= self._next_status:
                self._write_status()
            return taken

    def _keep(self, batch: Sequence[AccessEvent]) -> None:
        self.stats.taken += len(batch)
        self.stats.batches += 1
        self.directory.maybe_refresh()
        rows, counts, counted = self.prepare(batch)
        key = None
        if not self.journaling:
            key = f"batch-{uuid.uuid4().hex}"
            try:
                self.write_direct(rows, counts, key)
                self.stats.stored += len(rows)
                self.stats.counted += counted
                return
            except (SQLAlchemyError, DBAPIError) as exc:
                self._database_failed(exc)
        self._to_journal(rows, counts, counted, key)

    def write_direct(self, rows: list[tuple[Any, ...]], counts: list[tuple[Any, ...]],
                     key: str) -> None:
        """Insert a batch with its key. When the COMMIT's answer is lost (the link dropped
        after the server committed), the batch is journalled too, with its key: the replay
        finds the key committed and skips it (exactly once, docs/events.md). The key of the
        previous acknowledged batch is no longer needed and goes in the same transaction."""
        stamp = self.dialect.timestamp(time.time())
        with self.engine.begin() as conn:
            insert_batch(conn, self.dialect, rows, counts)
            conn.exec_driver_sql(self.dialect.upsert_mark, (key, 0, stamp))
            if self._acknowledged is not None:
                conn.exec_driver_sql(self.dialect.delete_mark, (self._acknowledged,))
        self._acknowledged = key

    def prepare(self, batch: Sequence[AccessEvent]) -> tuple[list[tuple[Any, ...]],
                                                             list[tuple[Any, ...]], int]:
        """Event rows and count rows for ``batch`` (see store.EVENT_COLUMNS, COUNT_COLUMNS)."""
        mode = self.config.allowed_events
        keep_allowed = mode == "full"
        count_allowed = mode == "counts"
        noise = self.noise
        terms = self.terms if self.terms else None
        lookup = self.directory.lookup
        rows: list[tuple[Any, ...]] = []
        counts: dict[tuple[int, str, str], list[Any]] = {}
        counted = skipped = 0
        last_allowed = noise.last_allowed
        for ev in batch:
            if count_allowed and ev[4] == _ALLOW and ev[8] is None:
                # Most events: an allowed name without a URL, folded into its minute's count.
                # Read by index, not unpacked whole: this loop runs for every DNS query.
                t, client, host = ev[0], ev[2], ev[3]
                last_allowed[client] = (t, host)  # what noise.allowed() does
                key = (int(t // 60) * 60, client, host)
                entry = counts.get(key)
                if entry is None:
                    class_id, student = lookup(ev[11], ev[12])
                    counts[key] = [1, ev[6], ev[9], ev[10], ev[11], class_id, student]
                else:
                    entry[0] += 1
                counted += 1
                continue
            (t, channel, client, host, action, reason, category, qtype, url, group, room,
             device, session, rule, revision, bypass, latency) = ev[:17]
            referrer, prefetch = (ev[17], ev[18]) if len(ev) > 17 else (None, False)
            flag = None
            if url is not None:
                if len(url) > 2000:
                    url = url[:2000]
                if terms is not None and terms.match(url):
                    flag = Flag.SEARCH_TERM
            if action == _ALLOW:
                noise.allowed(client, t, host)
                if not (keep_allowed or flag):
                    if count_allowed:
                        key = (int(t // 60) * 60, client, host)
                        entry = counts.get(key)
                        if entry is None:
                            class_id, student = lookup(device, session)
                            counts[key] = [1, category, group, room, device, class_id, student]
                        else:
                            entry[0] += 1
                        counted += 1
                    else:
                        skipped += 1
                    continue
                kind = None
            else:
                kind, referrer = noise.classify(client, t, host, category, referrer, prefetch)
            class_id, student = lookup(device, session)
            if rule is not None and len(rule) > 500:
                rule = rule[:500]
            rows.append((t, channel, client, host, action, reason, category, qtype, url, group,
                         room, device, session, class_id, student, rule, revision, bool(bypass),
                         latency, referrer, kind, flag))
        self.stats.skipped += skipped
        count_rows = [(minute, client, host, *entry) for (minute, client, host), entry
                      in counts.items()]
        return rows, count_rows, counted

    # --- when the database is away ----------------------------------------------------------

    def _database_failed(self, exc: Exception) -> None:
        self.stats.database_failures += 1
        self.stats.last_error = str(getattr(exc, "orig", exc))[:300]
        if not self.journaling:
            log.warning("event writer: database unavailable (%s); journaling to %s",
                        self.stats.last_error, self.journal.directory)
        self.journaling = True
        self._next_probe = time.monotonic() + PROBE_SECONDS

    def _to_journal(self, rows: list[tuple[Any, ...]], counts: list[tuple[Any, ...]],
                    counted: int, key: str | None = None) -> None:
        if not rows and not counts:
            return
        events = len(rows) + counted
        try:
            # "k": the batch was tried directly first and may have been committed.
            self.journal.append({"e": rows, "c": counts, **({"k": key} if key else {})})
        except (OSError, ValueError) as exc:
            if isinstance(exc, JournalFull):
                cause = "journal_limit"
            elif getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
                cause = "disk_full"
            else:
                cause = "disk_error"
            times = [r[0] for r in rows] + [c[0] for c in counts]
            self.stats.lost += events
            self._add_loss(events, min(times), max(times), cause, str(exc))
            return
        self.stats.journaled += events

    def _add_loss(self, count: int, first: float, last: float, cause: str,
                  detail: str) -> None:
        for loss in self.stats.losses:
            if loss["cause"] == cause:
                loss["count"] += count
                loss["first"] = min(loss["first"], first)
                loss["last"] = max(loss["last"], last)
                return
        self.stats.losses.append({"cause": cause, "count": count, "first": first,
                                  "last": last, "detail": detail})
        log.error("event writer: %d events lost, nowhere to keep them (%s: %s); "
                  "filtering goes on", count, cause, detail)

    def _note_drops(self) -> None:
        """Events the full queue turned away are reported too (the producer never waits)."""
        dropped = self.queue.dropped
        if dropped > self._reported_drops:
            now = time.time()
            self._add_loss(dropped - self._reported_drops, now, now, "queue_full",
                           f"the in-memory queue ({self.queue.capacity} events) was full")
            self._reported_drops = dropped

    def _report_losses(self) -> None:
        losses = self.stats.losses
        try:
            with self.engine.begin() as conn:
                record_losses(conn, losses, self.config.process)
        except (SQLAlchemyError, DBAPIError) as exc:
            log.debug("loss report postponed: %s", exc)
            return
        self.stats.losses = []

    def _try_replay(self) -> None:
        """Replay the closed segments; back to direct writes once nothing is left."""
        deadline = time.monotonic() + max(self.config.flush_interval, 0.2)
        self.journal.close_active()  # new events go to a fresh segment meanwhile
        busy = 0
        try:
            for path in self.journal.segments():
                state, replayed = replay_segment(self.engine, self.dialect, path,
                                                 deadline=deadline)
                self.stats.replayed += replayed
                if state == "busy":
                    busy += 1  # another process is still writing it: its own to replay
                elif state == "partial":
                    return  # out of time: serve the queue, go on next round
        except (SQLAlchemyError, DBAPIError, OSError) as exc:
            self._database_failed(exc)
            return
        finally:
            self.journal.forget_size()
        if len(self.journal.segments()) <= busy:
            log.info("event writer: database back, journal replayed")
            self.journaling = False

    def replay_now(self) -> None:
        """Replay whatever journal there is (tests, and a restart with a journal left)."""
        with self._lock:
            self.journaling = True
            self._next_probe = 0
            self._try_replay()

    # --- status -----------------------------------------------------------------------------

    def _write_status(self) -> None:
        self._next_status = time.monotonic() + STATUS_SECONDS
        path = self.config.status_path
        assert path is not None
        self.stats.journaling = self.journaling
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.stats.as_dict(self.queue), indent=1))
            os.replace(tmp, path)
        except OSError:
            pass  # a full disk: the counters stay in memory and in the log


def start_writer(config: Any, sessions: sessionmaker[Session], queue: EventQueue, *,
                 process: str = "gateway") -> EventWriter:
    """Start the writer for ``queue`` in this process, as kalkan.yaml says."""
    bind = sessions.kw.get("bind")
    url = bind.url.render_as_string(hide_password=False) if bind is not None \
        else config.database_url
    return EventWriter(queue, url, WriterConfig.from_config(config, process),
                       sessions=sessions).start()
