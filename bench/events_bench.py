"""How fast the access log is: events/s into SQLite and PostgreSQL with detection on, and a
filtered search over 10 million stored events.

    .venv/bin/python bench/events_bench.py [--events 400000] [--rows 10000000] [--keep DIR]
        [--only mix|blocked]  (one SQLite case; --only blocked uses --events all blocked)

Throughput: the events are made first and queued; the clock runs from the first flush until
the writer has stored them all *and* the detector (running beside it, as in ``kalkan run``)
has read and judged every stored row. The mix is a school's: 70 % allowed (kept as
per-minute counts, the default), 30 % blocked, with attempts that raise alerts. A second
line gives the worst case, every event blocked (each one a row). PostgreSQL is a throw-away
cluster from Debian's package, as in the tests.

Search: 10 million rows made inside the database (a recursive CTE on SQLite), indexes built
after; then ``kalkan logs search``'s query with typical filters, each the median of 5 runs,
and the slowest of them printed. Prints ``sqlite: N events/s``, ``postgresql: N events/s``,
``search 10M: N ms``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from gateway.alerts.service import AlertService
from gateway.config import Config
from gateway.events.event import AccessEvent
from gateway.events.queue import EventQueue
from gateway.events.reports import SearchFilter, search
from gateway.events.writer import EventWriter, WriterConfig
from policies.database import migrate, open_engine, session_factory, utcnow
from policies.demo import seed_demo

ALLOWED = ["bilimland.kz", "lib.kg", "wikipedia.org", "kundalik.com", "google.kg"]
BLOCKED = [("pornhub.com", "adult", "mandatory_category"), ("roblox.com", "games", "category"),
           ("tiktok.com", "social", "category"), ("ads.example.net", "ads", "category"),
           ("1xbet.com", "gambling", "category"), ("vk.com", "social", "category")]


def make_events(n: int, blocked_share: float) -> list[AccessEvent]:
    rng = random.Random(8)
    t0 = time.time() - n / 200
    events = []
    for i in range(n):
        client = 101 + i % 60
        t = t0 + i / 200  # 60 computers, 200 events/s between them: attempts come apart
        if rng.random() < blocked_share:
            host, category, reason = BLOCKED[rng.randrange(len(BLOCKED))]
            channel = "tls" if rng.random() < 0.5 else "dns"
            events.append(AccessEvent(t, channel, f"10.10.1.{client}", host, "block", reason,
                                      category, "A", None, "middle", "lab1",
                                      f"lab1-pc{client}", 1, "rule", 1, False, 0.2))
        else:
            host = ALLOWED[rng.randrange(len(ALLOWED))]
            events.append(AccessEvent(t, "dns", f"10.10.1.{client}", host, "allow",
                                      "category", "education", "A", None, "middle", "lab1",
                                      f"lab1-pc{client}", 1, "rule", 1, False, 0.2))
    return events


def throughput(url: str, events: list[AccessEvent], workdir: Path) -> float:
    engine = open_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as db:
        seed_demo(db)
    queue = EventQueue(len(events) + 1)
    for e in events:
        queue.put(e)
    writer = EventWriter(queue, url, WriterConfig(journal_dir=workdir / "journal"),
                         sessions=sessions)
    writer.directory.refresh()
    # The detector runs in its own process, as in `kalkan run` (the writers run in the DNS
    # and proxy processes): the two use both cores, as they do on the school's router.
    ctx = multiprocessing.get_context("spawn")
    done, ready, go = ctx.Queue(), ctx.Event(), ctx.Event()
    detector = ctx.Process(target=detect, args=(url, str(workdir), done, ready, go))
    detector.start()
    ready.wait(60)
    go.set()
    started = time.perf_counter()
    while len(queue):
        writer.flush()
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT COUNT(*) FROM access_events")).scalar() or 0
    done.put(stored)
    detector.join(600)
    finished = done.get(timeout=5)
    elapsed = finished - started
    assert writer.stats.lost == 0 and writer.stats.journaled == 0, writer.stats
    with engine.connect() as conn:
        alerts = conn.execute(text("SELECT COUNT(*) FROM alerts")).scalar()
    print(f"  ({len(events)} events, {stored} rows, {alerts} alerts, {elapsed:.2f} s)",
          file=sys.stderr)
    engine.dispose()
    return len(events) / elapsed


def detect(url: str, workdir: str, done: Any, ready: Any, go: Any) -> None:
    """The detector process: follow access_events until it has judged ``stored`` rows."""
    sessions = session_factory(open_engine(url))
    service = AlertService(sessions, Config.model_validate({"data_dir": workdir}))
    service.load()
    ready.set()
    go.wait()
    target = None
    while target is None or service.processed < target:
        if target is None and not done.empty():
            target = done.get()
        if service.poll() == 0:
            time.sleep(0.005)
    done.put(time.perf_counter())


# --- PostgreSQL: a throw-away cluster (as tests/conftest.py makes it) -------------------------

@contextmanager
def postgres_cluster() -> Iterator[str | None]:
    root = Path("/usr/lib/postgresql")
    bins = sorted(root.glob("*/bin/initdb")) if root.is_dir() else []
    if not bins:
        yield None
        return
    bindir = bins[-1].parent
    base = Path(tempfile.mkdtemp(prefix="kalkan-bench-pg-"))
    data, sockdir = base / "data", base / "sock"
    sockdir.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockdir, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"),
                    "-o", f"-k {sockdir} -p {port} -c listen_addresses='' "
                    "-c shared_buffers=256MB", "-w", "start"], check=True, capture_output=True)
    try:
        subprocess.run(["psql", "-h", str(sockdir), "-p", str(port), "-U", "postgres", "-c",
                        "CREATE DATABASE kalkan"], check=True, capture_output=True)
        yield f"postgresql+psycopg://postgres@/kalkan?host={sockdir}&port={port}"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


# --- 10 million rows --------------------------------------------------------------------------

INDEXES = {  # the model's indexes, built after the rows
    "ix_access_events_time": "time", "ix_access_events_client_time": "client, time",
    "ix_access_events_room_time": "room_id, time", "ix_access_events_class_time":
    "class_id, time", "ix_access_events_category_time": "category, time",
    "ix_access_events_student_id": "student_id"}

FILL_SQLITE = """
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < :rows)
INSERT INTO access_events (time, channel, client, host, action, reason, category, qtype,
    group_id, room_id, device_id, session_id, class_id, student_id, bypass, latency_ms, noise)
SELECT datetime(:start, '+' || (x * 30 * 86400 / :rows) || ' seconds') || '.000000',
    CASE x % 3 WHEN 0 THEN 'tls' ELSE 'dns' END,
    '10.10.' || (x % 4) || '.' || (x % 250),
    'site' || (x % 20000) || '.example',
    CASE WHEN x % 10 = 0 THEN 'allow' ELSE 'block' END,
    'category',
    CASE x % 12 WHEN 0 THEN 'adult' WHEN 1 THEN 'games' WHEN 2 THEN 'social'
        WHEN 3 THEN 'ads' WHEN 4 THEN 'video' WHEN 5 THEN 'chat' WHEN 6 THEN 'gambling'
        WHEN 7 THEN 'shopping' WHEN 8 THEN 'drugs' WHEN 9 THEN 'dating' WHEN 10 THEN 'warez'
        ELSE 'violence' END,
    'A', 'middle',
    CASE x % 4 WHEN 0 THEN 'lab1' WHEN 1 THEN 'lab2' WHEN 2 THEN 'library' ELSE 'staffroom' END,
    'pc' || (x % 1000), x % 5000,
    (1 + x % 11) || CASE WHEN x % 7 = 0 THEN 'B' ELSE 'A' END,
    NULL, 0, 0.3, CASE WHEN x % 12 = 3 THEN 'ads' END
FROM n
"""


def fill_sqlite(path: Path, rows: int) -> None:
    engine = open_engine(f"sqlite:///{path}")
    migrate(engine)
    with engine.begin() as conn:
        for name in INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        conn.exec_driver_sql("PRAGMA cache_size = -1000000")
        start = (utcnow().replace(microsecond=0) - __import__("datetime").timedelta(days=30))
        conn.execute(text(FILL_SQLITE), {"rows": rows, "start": f"{start:%Y-%m-%d %H:%M:%S}"})
        for name, columns in INDEXES.items():
            conn.execute(text(f"CREATE INDEX {name} ON access_events ({columns})"))
        conn.execute(text("ANALYZE"))
    engine.dispose()


def search_times(url: str) -> dict[str, float]:
    import datetime as dt

    engine = open_engine(url)
    sessions = session_factory(engine)
    now = utcnow()
    week = now - dt.timedelta(days=7)
    filters = {
        "room+category+action, last 7 days": SearchFilter(room="lab1", category="adult",
                                                          action="block", since=week),
        "class, last 7 days": SearchFilter(class_id="7B", since=week),
        "client": SearchFilter(client="10.10.1.101"),
        "category+action, one day": SearchFilter(category="drugs", action="block",
                                                 since=now - dt.timedelta(days=3),
                                                 until=now - dt.timedelta(days=2)),
        "room+class+category": SearchFilter(room="lab2", class_id="5A", category="games"),
        "time range only": SearchFilter(since=now - dt.timedelta(days=1)),
    }
    out = {}
    with sessions() as db:
        for name, where in filters.items():
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                rows = search(db, where, 100)
                runs.append((time.perf_counter() - started) * 1000)
            out[name] = statistics.median(runs)
            print(f"  search {name}: {out[name]:.1f} ms ({len(rows)} rows)", file=sys.stderr)
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, default=None,
                        help="Keep (and reuse) the 10M-row SQLite file in this directory.")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--only", choices=["mix", "blocked"], default=None,
                        help="Run only this SQLite throughput case (no PostgreSQL, no search).")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kalkan-events-bench-"))
    try:
        if args.only == "mix":
            rate = throughput(f"sqlite:///{work}/mix.db", make_events(args.events, 0.3),
                              work / "a")
            print(f"sqlite: {rate:,.0f} events/s".replace(",", " "))
            return
        if args.only == "blocked":
            rate = throughput(f"sqlite:///{work}/blocked.db", make_events(args.events, 1.0),
                              work / "b")
            print(f"sqlite (every event blocked): {rate:,.0f} events/s".replace(",", " "))
            return
        school_mix = make_events(args.events, 0.3)
        all_blocked = make_events(args.events // 2, 1.0)
        rate = throughput(f"sqlite:///{work}/mix.db", school_mix, work / "a")
        print(f"sqlite: {rate:,.0f} events/s".replace(",", " "))
        rate = throughput(f"sqlite:///{work}/blocked.db", all_blocked, work / "b")
        print(f"sqlite (every event blocked): {rate:,.0f} events/s".replace(",", " "))
        with postgres_cluster() as pg_url:
            if pg_url is None:
                print("postgresql: skipped (Debian's postgresql is not installed)")
            else:
                rate = throughput(pg_url, school_mix, work / "c")
                print(f"postgresql: {rate:,.0f} events/s".replace(",", " "))
        if not args.skip_search:
            place = args.keep or work
            place.mkdir(parents=True, exist_ok=True)
            db_file = place / f"search-{args.rows}.db"
            if not db_file.exists():
                started = time.perf_counter()
                fill_sqlite(db_file, args.rows)
                print(f"  made {args.rows} rows in {time.perf_counter() - started:.0f} s "
                      f"({db_file.stat().st_size >> 20} MB)", file=sys.stderr)
            times = search_times(f"sqlite:///{db_file}")
            label = f"{args.rows // 1_000_000}M" if args.rows >= 1_000_000 else str(args.rows)
            print(f"search {label}: {max(times.values()):.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
