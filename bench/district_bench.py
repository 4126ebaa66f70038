"""A district of 500 schools against one PostgreSQL: event upload and policy fan-out.

    .venv/bin/python bench/district_bench.py [--schools 500] [--rate 50] [--seconds 60]

A throw-away PostgreSQL cluster (Debian's postgresql, in /tmp, removed at the end) holds the
district schema (``public``: the baseline) and one schema per school with the tables the
gateways write and poll (``access_events``, ``state_version``), created from kalkan's models.

Each simulated school gateway does what ``gateway/events/writer.py`` and the engine's watcher
do: every ``--flush`` seconds (0.25) it inserts the events its students made since the last
flush into its own schema, one transaction per batch, as the writer writes
(``gateway.events.store``: COPY on PostgreSQL; ``--insert executemany`` for the INSERT it
used before), plus the batch's key row; every ``--poll`` seconds (1) it reads its state version
and the district baseline revision, and fetches the baseline document when it moved. Half-way
through, the bench publishes a new baseline revision and measures how long until all gateways
have fetched it.

Connections: a real gateway holds its own connections (writer, watcher). 500 of them would
need PostgreSQL's max_connections raised (or PgBouncer) and several GB of backend memory that
this 2-core machine shares with others, so the simulated gateways are multiplexed over
``--processes`` × ``--connections`` connections: it measures what the database absorbs (the
same transactions, statements and rows), not 500 backends' memory. See docs/district.md.

Printed: sustained events/s (the rows of every event made within the measured time, all
committed: after the window each school flushes once more what it made up to the window's
end, so a database that keeps up shows the offered rate), lag from an event's time to the
commit of its batch (p50/p99/max), and the baseline fan-out time.
"""

from __future__ import annotations

import argparse
import heapq
import multiprocessing as mp
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BASELINE = "kalkan_baseline: 1\nmandatory: [adult, violence, terrorism, extremism, hatred]\n"


# --- the throw-away cluster ------------------------------------------------------------------

def _pg_bindir() -> Path:
    root = Path("/usr/lib/postgresql")
    versions = sorted((p for p in root.iterdir() if (p / "bin" / "initdb").exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else 0) if root.is_dir() else []
    if not versions:
        sys.exit("Debian's postgresql package is not installed (apt-get install postgresql)")
    return versions[-1] / "bin"


class Cluster:
    def __init__(self) -> None:
        self.bindir = _pg_bindir()
        self.base = Path(tempfile.mkdtemp(prefix="kalkan-district-bench-"))
        self.as_root = os.geteuid() == 0
        self.run_as = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        self.sockdir = self.base / "sock"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def start(self, max_connections: int) -> None:
        data = self.base / "data"
        self.sockdir.mkdir()
        if self.as_root:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sockdir, "postgres")
        subprocess.run([*self.run_as, str(self.bindir / "initdb"), "-D", str(data), "-U",
                        "postgres", "--auth=trust", "-E", "UTF8"], check=True,
                       capture_output=True)
        # Defaults but for the connection count and a buffer pool fit for a real server.
        opts = (f"-k {self.sockdir} -p {self.port} -c listen_addresses='' "
                f"-c max_connections={max_connections} -c shared_buffers=256MB")
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(data), "-l",
                        str(self.base / "log"), "-o", opts, "-w", "start"], check=True,
                       capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D",
                        str(self.base / "data"), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)

    def cpu_seconds(self) -> float:
        """User + system CPU of the postmaster, its live children (the backends) and the
        children it has reaped."""
        postmaster = int((self.base / "data" / "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            if pid == postmaster:
                total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            elif int(fields[1]) == postmaster:
                total += int(fields[11]) + int(fields[12])
        return total / tick

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@/postgres?host={self.sockdir}&port={self.port}"

    @property
    def conninfo(self) -> str:
        return f"host={self.sockdir} port={self.port} user=postgres dbname=postgres"


def create_district(url: str, schools: int) -> None:
    """The district tables (migrations) and, per school, the tables the bench touches."""
    from sqlalchemy import text

    from district.schools import open_district
    from gateway.events.models import AccessRecord, JournalMark
    from policies.models import StateVersion

    engine = open_district(url)
    for n in range(schools):
        with engine.begin() as conn:  # one transaction each: locks are per transaction
            schema = f"school_{n:04d}"
            conn.execute(text(f"CREATE SCHEMA {schema}"))
            scoped = conn.execution_options(schema_translate_map={None: schema})
            AccessRecord.__table__.create(scoped)
            JournalMark.__table__.create(scoped)
            StateVersion.__table__.create(scoped)
            conn.execute(text(f"INSERT INTO {schema}.state_version VALUES (1, 1, now())"))
    engine.dispose()


def publish(url: str) -> float:
    from district.baseline import publish_baseline
    from district.schools import open_district
    from policies.database import session_factory
    from policies.decision import CouncilDecision

    engine = open_district(url)
    with session_factory(engine)() as db:
        at = time.time()
        publish_baseline(db, BASELINE + "sites:\n  extremism: [bench.example]\n",
                         file="bench", author="bench",
                         decision=CouncilDecision("B-1", "2026-11-25"))
    engine.dispose()
    return at


# --- the simulated gateways ------------------------------------------------------------------

def uploader(conninfo: str, schools: list[int], args: argparse.Namespace, start: float,
             results: mp.Queue) -> None:
    """One process: its share of the schools, over ``args.connections`` connections."""
    import psycopg

    from gateway.events.store import EVENT_COLUMNS, SqlDialect

    dialect = SqlDialect("postgresql")
    columns = ", ".join(EVENT_COLUMNS)
    end = start + args.seconds
    lags = array("f")
    committed = 0
    seen: dict[int, float] = {}  # school → when it first read the new baseline revision
    lock = threading.Lock()
    rng = random.Random(schools[0])
    # (due time, kind, school, last flush): flushes and polls with random phases.
    plan: list[tuple[float, int, int, float]] = []
    for s in schools:
        plan.append((start + rng.random() * args.flush, 0, s, start))
        plan.append((start + rng.random() * args.poll, 1, s, 0.0))
    heapq.heapify(plan)
    plan_lock = threading.Lock()
    baseline_now = [1]

    def work() -> None:
        nonlocal committed
        conn = psycopg.connect(conninfo, autocommit=False)
        cur = conn.cursor()
        carry: dict[int, float] = {}
        keys: dict[int, str] = {}
        while True:
            with plan_lock:
                if not plan:
                    return
                due, kind, school, last = heapq.heappop(plan)
            wait = min(due, end) - time.time()
            if wait > 0:
                time.sleep(wait)
            now = time.time()
            closing = now >= end  # the window is over: each school's last flush, up to `end`
            if closing:
                if kind == 1 or last >= end:
                    continue
                now = end
            schema = f"school_{school:04d}"
            if kind == 0:  # the writer's flush: everything since the last one, one transaction
                exact = (now - last) * args.rate + carry.get(school, 0.0)
                n = int(exact)
                carry[school] = exact - n
                step = (now - last) / max(n, 1)
                times = [last + step * (i + 1) for i in range(n)]
                rows = dialect.event_rows([
                    (t, "dns", f"10.{school // 250}.{school % 250}.{i % 200 + 2}",
                     f"site{i % 97}.example.kg", "block", "category", "games", "A", None,
                     "students", "lab1", None, None, None, None, "group students: block games",
                     3, False, 1.5, None, None, None) for i, t in enumerate(times)])
                if rows and args.insert == "copy":
                    with cur.copy(f"COPY {schema}.access_events ({columns}) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
                elif rows:
                    cur.executemany(dialect.insert_events.replace(
                        "INTO access_events", f"INTO {schema}.access_events"), rows)
                # The batch's key, and the previous one's removal (writer.write_direct).
                key = f"batch-{school}-{now}"
                cur.execute(dialect.upsert_mark.replace(
                    "INTO journal_marks", f"INTO {schema}.journal_marks"),
                    (key, 0, dialect.timestamp(now)))
                if school in keys:
                    cur.execute(f"DELETE FROM {schema}.journal_marks WHERE segment = %s",
                                (keys[school],))
                keys[school] = key
                conn.commit()
                done = time.time()
                with lock:
                    committed += n
                    lags.extend(done - t for t in times)
                nxt = (max(now, due) + args.flush, 0, school, now)
            else:  # the watcher's poll: state version and baseline revision
                cur.execute(f"SELECT version FROM {schema}.state_version WHERE id = 1")
                cur.fetchone()
                cur.execute("SELECT max(id) FROM public.district_baselines")
                revision = cur.fetchone()[0] or 0
                if revision > baseline_now[0] and school not in seen:
                    cur.execute("SELECT document FROM public.district_baselines WHERE id = %s",
                                (revision,))
                    cur.fetchone()
                    with lock:
                        seen[school] = time.time()
                conn.commit()
                nxt = (due + args.poll, 1, school, 0.0)
            if not closing:
                with plan_lock:
                    heapq.heappush(plan, nxt)

    # Publish: first revision is 1 (created by the main process before start).
    threads = [threading.Thread(target=work) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    results.put((committed, lags.tobytes(), seen, usage.ru_utime + usage.ru_stime))


def percentile(sorted_values: array, q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schools", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0, help="events/s per school")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time")
    parser.add_argument("--flush", type=float, default=0.25, help="writer flush interval")
    parser.add_argument("--poll", type=float, default=1.0, help="policy poll interval")
    parser.add_argument("--insert", choices=("copy", "executemany"), default="copy",
                        help="COPY, as the writer does on PostgreSQL, or its former "
                             "executemany INSERT")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--connections", type=int, default=3, help="per process")
    args = parser.parse_args()

    cluster = Cluster()
    try:
        cluster.start(max_connections=args.processes * args.connections + 20)
        t0 = time.time()
        create_district(cluster.url, args.schools)
        publish(cluster.url)  # revision 1: what every gateway has at the start
        print(f"district of {args.schools} schools created in {time.time() - t0:.1f} s; "
              f"{args.schools} × {args.rate:g} = {args.schools * args.rate:,.0f} events/s "
              f"offered for {args.seconds:g} s over {args.processes} × {args.connections} "
              f"connections, {args.insert}, flush every {args.flush:g} s", flush=True)
        start = time.time() + 1.0
        results: mp.Queue = mp.Queue()
        shares = [list(range(args.schools))[i::args.processes] for i in range(args.processes)]
        procs = [mp.Process(target=uploader, args=(cluster.conninfo, share, args, start,
                                                   results)) for share in shares]
        for p in procs:
            p.start()
        time.sleep(max(0.0, start - time.time()))
        pg_cpu = cluster.cpu_seconds()
        load = os.getloadavg()[0]
        time.sleep(max(0.0, start + args.seconds / 2 - time.time()))
        published = publish(cluster.url)
        time.sleep(max(0.0, start + args.seconds - time.time()))
        pg_cpu = cluster.cpu_seconds() - pg_cpu  # before the backends exit
        outcome = [results.get() for _ in procs]
        load = max(load, os.getloadavg()[0])
        for p in procs:
            p.join()
        committed = sum(o[0] for o in outcome)
        lags = array("f")
        seen: dict[int, float] = {}
        for o in outcome:
            lags.frombytes(o[1])
            seen.update(o[2])
        ordered = array("f", sorted(lags))
        print(f"sustained: {committed / args.seconds:,.0f} events/s committed "
              f"({committed:,} in {args.seconds:g} s; offered "
              f"{args.schools * args.rate:,.0f}/s)")
        print(f"lag event→commit: p50 {percentile(ordered, 0.5):.3f} s, "
              f"p99 {percentile(ordered, 0.99):.3f} s, max {ordered[-1]:.3f} s")
        client_cpu = sum(o[3] for o in outcome)
        print(f"CPU: PostgreSQL {pg_cpu / args.seconds:.2f} cores, the simulated gateways "
              f"{client_cpu / args.seconds:.2f} cores, of {os.cpu_count()}; machine load "
              f"average up to {load:.1f} (other work shares this machine)")
        if len(seen) == args.schools:
            print(f"baseline fan-out: all {args.schools} gateways had the new revision "
                  f"{max(seen.values()) - published:.2f} s after publishing "
                  f"(median {sorted(seen.values())[len(seen) // 2] - published:.2f} s)")
        else:
            print(f"baseline fan-out: only {len(seen)} of {args.schools} gateways saw it "
                  "before the end")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
