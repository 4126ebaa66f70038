"""How fast the admin answers with ten million events: the dashboard and the teacher's page,
20 requests in parallel (measures; checks nothing).

    .venv/bin/python bench/admin_load.py [--rows 10000000] [--seconds 20] [--parallel 20]
        [--cache /var/tmp/kalkan-admin-load] [--rebuild] [--postgres] [--web-processes N]

The SQLite database (10 million access events over the last 30 days, as bench/events_bench.py
makes them, with the hourly counts the writer would have kept) is built once and reused from
``--cache`` while it is less than a day old: building it takes minutes. A cache made by
another migration history (an older tree, another branch) is brought to this tree's schema
by replacing everything but its events with a fresh demo school's (seconds). Each run replaces the
previous run's lesson, students' requests and open alerts with new ones, starts the real
admin as ``kalkan admin`` serves it (waitress, one process per core: admin_ui/serving.py)
on a loopback port, signs in as the
responsible person and as a teacher, and then 20 threads ask for the dashboard and the
teacher's lesson page in turn, each on its own connection kept alive, for ``--seconds``.
Prints p50/p95/p99 per page and whether p95 <= 150 ms.
``--postgres`` does the same on a throw-away PostgreSQL cluster (Debian's package).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from events_bench import FILL_SQLITE, INDEXES, postgres_cluster  # noqa: E402
from sqlalchemy import text  # noqa: E402

from admin_ui.staff import DEMO_PASSWORD, give_demo_passwords  # noqa: E402
from gateway.alerts.models import Alert, AlertEvidence  # noqa: E402
from gateway.alerts.service import STATE_KEY  # noqa: E402
from gateway.events.models import PipelineState  # noqa: E402
from gateway.events.rollup import backfill  # noqa: E402
from policies.database import migrate, open_engine, session_factory, utcnow  # noqa: E402
from policies.demo import seed_demo  # noqa: E402
from policies.models import RequestKind, SiteRequest  # noqa: E402
from policies.sessions import open_session  # noqa: E402

GOAL_MS = 150.0
WARM_UP_SECONDS = 5.0
PAGES = {"dashboard": ("admin", "/dashboard/"), "teacher": ("aigul", "/lessons/")}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

FILL_POSTGRESQL = """
INSERT INTO access_events (time, channel, client, host, action, reason, category, qtype,
    group_id, room_id, device_id, session_id, class_id, student_id, bypass, latency_ms, noise)
SELECT :start + make_interval(secs => x::float8 * 30 * 86400 / :rows),
    CASE x % 3 WHEN 0 THEN 'tls' ELSE 'dns' END, '10.10.' || (x % 4) || '.' || (x % 250),
    'site' || (x % 20000) || '.example', CASE WHEN x % 10 = 0 THEN 'allow' ELSE 'block' END,
    'category',
    (ARRAY['adult','games','social','ads','video','chat','gambling','shopping','drugs',
           'dating','warez','violence'])[1 + x % 12],
    'A', 'middle', (ARRAY['lab1','lab2','library','staffroom'])[1 + x % 4], 'pc' || (x % 1000),
    x % 5000, (1 + x % 11) || CASE WHEN x % 7 = 0 THEN 'B' ELSE 'A' END, NULL, false, 0.3,
    CASE WHEN x % 12 = 3 THEN 'ads' END
FROM generate_series(1, :rows) AS x
"""


def make_school(url: str) -> None:
    """The demo school with its staff's passwords, in a database migrated to the head."""
    engine = open_engine(url)
    migrate(engine)
    with session_factory(engine)() as db:
        seed_demo(db)
        give_demo_passwords(db)
    engine.dispose()


def build(url: str, rows: int) -> None:
    """The demo school, ``rows`` events over 30 days up to now, and their hourly counts."""
    make_school(url)
    engine = open_engine(url)
    sessions = session_factory(engine)
    start = utcnow().replace(microsecond=0) - dt.timedelta(days=30)
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as conn:
        for name in INDEXES:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        if sqlite:
            conn.exec_driver_sql("PRAGMA cache_size = -500000")
            conn.execute(text(FILL_SQLITE), {"rows": rows, "start": f"{start:%Y-%m-%d %H:%M:%S}"})
        else:
            conn.execute(text(FILL_POSTGRESQL), {"rows": rows, "start": start})
        for name, columns in INDEXES.items():
            conn.execute(text(f"CREATE INDEX {name} ON access_events ({columns})"))
        backfill(conn)  # what the writer would have counted, row by row
        conn.execute(text("ANALYZE"))
        # The detector has judged these long ago: it starts after them, as in a running school.
        last = conn.execute(text("SELECT MAX(id) FROM access_events")).scalar() or 0
    with sessions() as db:
        db.merge(PipelineState(key=STATE_KEY, value=last, updated_at=utcnow()))
        db.commit()
    engine.dispose()


# What takes minutes to build: the events and what the writer counted from them. Everything
# else in the cached database is the demo school, which a fresh database has in a second.
EVENT_TABLES = ("access_events", "access_hours", "blocked_site_hours", "pipeline_state")


def schema(conn: sqlite3.Connection, db: str = "main") -> dict[str, tuple[object, ...]]:
    """Each table's columns, indexes and foreign keys as SQLite reports them, in no particular
    order (a column added by a later migration compares equal to one made with the table)."""
    tables = [name for (name,) in conn.execute(
        f"SELECT name FROM {db}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    result: dict[str, tuple[object, ...]] = {}
    for table in tables:
        columns = sorted(tuple(row[1:]) for row in conn.execute(
            f"PRAGMA {db}.table_info('{table}')"))
        indexes = sorted((row[1], row[2], tuple(info[2] for info in conn.execute(
            f"PRAGMA {db}.index_info('{row[1]}')"))) for row in conn.execute(
            f"PRAGMA {db}.index_list('{table}')"))
        keys = sorted(tuple(row[2:5]) for row in conn.execute(
            f"PRAGMA {db}.foreign_key_list('{table}')"))
        result[table] = (tuple(columns), tuple(indexes), tuple(keys))
    return result


def catch_up(cached: Path) -> bool:
    """Bring a cached database made by an older (or differently numbered) migration history
    to this tree's schema without rebuilding its events: every table but ``EVENT_TABLES`` is
    replaced by a freshly migrated demo school's. False when the event tables themselves
    differ (then only a rebuild will do)."""
    with tempfile.TemporaryDirectory(prefix="kalkan-admin-load-") as tmp:
        fresh = Path(tmp) / "fresh.db"
        make_school(f"sqlite:///{fresh}")
        conn = sqlite3.connect(cached, isolation_level=None)
        try:
            conn.execute("ATTACH DATABASE ? AS fresh", (str(fresh),))
            mine, wanted = schema(conn), schema(conn, "fresh")
            if mine == wanted:
                return True
            if any(mine.get(t) != wanted.get(t) for t in EVENT_TABLES):
                return False
            conn.execute("PRAGMA foreign_keys = OFF")
            conn.execute("BEGIN")
            for table in mine:
                if table not in EVENT_TABLES:
                    conn.execute(f'DROP TABLE main."{table}"')
            statements = conn.execute(
                "SELECT type, tbl_name, sql FROM fresh.sqlite_master WHERE sql IS NOT NULL "
                "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'index'").fetchall()
            for kind, table, sql in statements:
                if table not in EVENT_TABLES:
                    conn.execute(sql)  # unqualified: made in main
                    if kind == "table":
                        conn.execute(f'INSERT INTO main."{table}" SELECT * FROM fresh."{table}"')
            conn.execute("COMMIT")
            caught_up = schema(conn) == wanted
            conn.execute("DETACH DATABASE fresh")
            return caught_up
        finally:
            conn.close()


def add_lesson_and_alerts(url: str) -> None:
    """An open lesson of aigul's with students' requests, and open alerts about her class."""
    sessions = session_factory(open_engine(url))
    with sessions() as db:  # what an earlier run added goes first
        db.execute(text("DELETE FROM alert_evidence WHERE alert_id IN "
                        "(SELECT id FROM alerts WHERE dedup_key LIKE 'bench|%')"))
        db.execute(text("DELETE FROM alerts WHERE dedup_key LIKE 'bench|%'"))
        db.execute(text("DELETE FROM site_requests"))
        db.execute(text("UPDATE internet_sessions SET closed_at = :now WHERE closed_at IS NULL"),
                   {"now": utcnow()})
        db.commit()
        session = open_session(db, room="lab1", teacher="aigul", class_id="7B", minutes=90)
        now = utcnow()
        for i in range(6):
            db.add(SiteRequest(kind=RequestKind.LESSON.value, created_at=now, client="10.10.1.101",
                               device_id=f"lab1-pc{i:02d}", room_id="lab1", group_id="middle",
                               session_id=session.id, host=f"site{i}.example", reason="category",
                               message="for the lesson", language="ky"))
        for i in range(30):
            alert = Alert(dedup_key=f"bench|{time.time_ns()}|{i}", rule="repeated_attempts",
                          category="adult", severity="high", created_at=now, updated_at=now,
                          first_seen=now, last_seen=now, attempts=12, client="10.10.1.101",
                          device_id=f"lab1-pc{i:02d}", class_id="7B" if i % 2 else "10A",
                          room_id="lab1", sites=["site1.example"])
            db.add(alert)
            db.flush()
            db.add_all(AlertEvidence(alert_id=alert.id, event_id=alert.id * 100 + k, time=now,
                                     channel="dns", host=f"site{k % 3}.example",
                                     category="adult", action="block") for k in range(12))
        db.commit()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """A signed-in browser: its cookie, and a kept-alive connection per thread (as a browser
    keeps one; the admin speaks HTTP/1.1)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie = ""
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                                timeout=30)
        return conn

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie, "Accept-Language": "ru"}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):  # the server may have closed a kept-alive connection
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read().decode("utf-8", "replace")
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self.local.conn = None
        return response.status, data

    def sign_in(self, username: str) -> None:
        _, page = self.request("GET", "/login")
        token = TOKEN.search(page)[1]  # type: ignore[index]
        status, _ = self.request("POST", "/login", urlencode(
            {"csrf_token": token, "username": username, "password": DEMO_PASSWORD}))
        if status != 302:
            raise SystemExit(f"signing in as {username} failed: HTTP {status}")


def wait_for(port: int, process: subprocess.Popen[bytes], limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the admin exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the admin did not start within 5 minutes")


def wait_for_all_processes(out: Path, process: subprocess.Popen[bytes],
                           limit: float = 120) -> None:
    """Until every process of the admin serves: a school's admin has been up for hours."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        text = out.read_text(errors="replace")
        wanted = re.search(r"admin at \S+(?: in (\d+) process)?", text)  # (older trees: one)
        count = int(wanted[1] or 1) if wanted else 0
        if wanted and text.count("serving too") >= count - 1:
            print(f"  admin: {count} process{'es' if count > 1 else ''}", file=sys.stderr)
            return
        if process.poll() is not None:
            raise SystemExit(f"the admin exited with {process.returncode}")
        time.sleep(0.3)
    raise SystemExit("the admin's processes did not all start within 2 minutes")


def drive(port: int, seconds: float, parallel: int) -> dict[str, list[float]]:
    browsers = {}
    for page, (username, _path) in PAGES.items():
        browsers[page] = Browser(port)
        browsers[page].sign_in(username)
        for _ in range(3):  # warm: first queries, template compilation, figure cache
            status, _body = browsers[page].request("GET", PAGES[page][1])
            if status != 200:
                raise SystemExit(f"{page}: HTTP {status}")
    for page, (_username, path) in PAGES.items():  # one at a time: what a page itself costs
        alone = []
        for _ in range(20):
            started = time.perf_counter()
            browsers[page].request("GET", path)
            alone.append((time.perf_counter() - started) * 1000)
        print(f"  {page} alone: p50 {statistics.median(alone):.0f} ms", file=sys.stderr)
    # Every process of the admin compiles its templates, loads the catalogs and computes the
    # figures at its first views: a few seconds of the same load first, not counted.
    hammer(browsers, WARM_UP_SECONDS, parallel)
    return hammer(browsers, seconds, parallel)


def hammer(browsers: dict[str, Browser], seconds: float,
           parallel: int) -> dict[str, list[float]]:
    """``parallel`` threads asking for the pages in turn for ``seconds``: the times."""
    times: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(n: int) -> None:
        names = list(PAGES)
        i = n
        while time.monotonic() < deadline:
            page = names[i % len(names)]
            i += 1
            started = time.perf_counter()
            try:
                status, _body = browsers[page].request("GET", PAGES[page][1])
            except OSError as exc:
                errors.append(f"{page}: {exc}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if status == 200:
                    times[page].append(elapsed)
                else:
                    errors.append(f"{page}: HTTP {status}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        print(f"  {len(errors)} errors, e.g. {errors[0]}", file=sys.stderr)
    return times


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run_admin(url: str, seconds: float, parallel: int, label: str,
              web_processes: int | None = None) -> bool:
    work = Path(tempfile.mkdtemp(prefix="kalkan-admin-load-"))
    port = free_port()
    (work / "kalkan.yaml").write_text(
        f"data_dir: {work}/data\ndatabase:\n  url: \"{url}\"\nadmin:\n  listen: "
        f"\"127.0.0.1:{port}\"\nretention:\n  blocked_events_days: 400\n"
        f"  allowed_events_days: 400\n  max_event_store_mb: 0\n")
    kalkan = Path(sys.executable).parent / "kalkan"
    with (work / "admin.log").open("wb") as errors, (work / "admin.out").open("wb") as out:
        extra = ["--web-processes", str(web_processes)] if web_processes else []
        process = subprocess.Popen([str(kalkan), "--config", str(work / "kalkan.yaml"),
                                    "admin", *extra], stdout=out, stderr=errors, cwd=work)
    try:
        wait_for(port, process)
        wait_for_all_processes(work / "admin.out", process)
        load_before = os.getloadavg()
        times = drive(port, seconds, parallel)
    finally:
        process.terminate()
        process.wait(10)
        log = (work / "admin.log").read_text(errors="replace")
        shutil.rmtree(work, ignore_errors=True)
        if process.returncode not in (0, -signal.SIGTERM):
            print(log[-3000:], file=sys.stderr)  # why it stopped
    if "Traceback" in log:
        print(log[-2000:], file=sys.stderr)
    met = True
    print(f"{label}: load average {' '.join(f'{x:.2f}' for x in load_before)} before, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} after (other work on the machine "
          f"slows the admin down)")
    for page, values in times.items():
        p95 = percentile(values, 95)
        met = met and p95 <= GOAL_MS
        print(f"{label} {page}: {len(values)} requests in {seconds:.0f} s "
              f"({len(values) / seconds:.1f}/s), p50 {statistics.median(values):.0f} ms, "
              f"p95 {p95:.0f} ms, p99 {percentile(values, 99):.0f} ms")
    print(f"{label}: p95 <= {GOAL_MS:.0f} ms with {parallel} in parallel: "
          f"{'yes' if met else 'NO'}")
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--parallel", type=int, default=20)
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/kalkan-admin-load"))
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--postgres", action="store_true",
                        help="Also run against a throw-away PostgreSQL cluster.")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--web-processes", type=int, default=None,
                        help="Processes serving the admin (default: kalkan admin's own).")
    args = parser.parse_args()

    args.cache.mkdir(parents=True, exist_ok=True)
    label = f"{args.rows // 1_000_000}M" if args.rows >= 1_000_000 else str(args.rows)
    cached = args.cache / f"admin-{args.rows}.db"
    built = args.cache / f"admin-{args.rows}.built"  # when: the file's own time moves
    stale = not built.exists() or time.time() - built.stat().st_mtime > 86400
    if not args.skip_sqlite and not args.rebuild and not stale and not catch_up(cached):
        print("  the cached database's events differ from this tree's schema: rebuilding",
              file=sys.stderr)
        stale = True
    if not args.skip_sqlite and (args.rebuild or stale):
        for old in args.cache.glob(f"admin-{args.rows}.*"):
            old.unlink()
        started = time.perf_counter()
        build(f"sqlite:///{cached}.building", args.rows)
        os.replace(f"{cached}.building", cached)
        built.touch()
        print(f"  built {args.rows} events in {time.perf_counter() - started:.0f} s "
              f"({cached.stat().st_size >> 20} MB)", file=sys.stderr)
    if not args.skip_sqlite:
        add_lesson_and_alerts(f"sqlite:///{cached}")
        run_admin(f"sqlite:///{cached}", args.seconds, args.parallel, f"sqlite {label}",
                  args.web_processes)
    if args.postgres:
        with postgres_cluster() as pg_url:
            if pg_url is None:
                print("postgresql: skipped (Debian's postgresql is not installed)")
                return
            started = time.perf_counter()
            build(pg_url, args.rows)
            print(f"  built {args.rows} events in PostgreSQL in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
            add_lesson_and_alerts(pg_url)
            run_admin(pg_url, args.seconds, args.parallel, f"postgresql {label}",
                      args.web_processes)


if __name__ == "__main__":
    main()
