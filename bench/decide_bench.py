"""How fast is decide()? The demo policy plus 10,000 custom site-list entries.

Prints the median and p99 time per decision over a realistic mix of clients and hosts, and
how long recompiling the snapshot takes. Goals (issue 3): median ≤ 5 µs, recompile ≤ 200 ms.
Run: ``make bench`` or ``.venv/bin/python bench/decide_bench.py [--entries 10000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies.database import migrate, open_engine, session_factory
from policies.decision import CouncilDecision
from policies.demo import demo_policy_data, seed_demo
from policies.document import render_document
from policies.engine import Engine
from policies.revisions import import_policy
from policies.sessions import open_session

TLDS = ["kg", "kz", "uz", "ru", "com", "org", "net", "info"]
WORDS = ["bilim", "mektep", "news", "game", "video", "shop", "cdn", "static", "api", "mail",
         "kitep", "sabak", "test", "portal", "online", "media", "play", "school", "lib", "edu"]


def random_domain(rng: random.Random, labels: int) -> str:
    parts = [rng.choice(WORDS) + str(rng.randrange(10_000)) for _ in range(labels - 1)]
    return ".".join([*parts, rng.choice(TLDS)])


def build_policy(entries: int, rng: random.Random) -> tuple[dict, list[str]]:
    data = demo_policy_data()
    listed: list[str] = []
    seen: set[str] = set()
    groups = list(data["groups"])
    for i in range(entries):
        domain = random_domain(rng, rng.choice((2, 2, 3)))
        while domain in seen:
            domain = random_domain(rng, rng.choice((2, 2, 3)))
        seen.add(domain)
        listed.append(domain)
        action = "block" if i % 3 else "allow"
        target = data["sites"] if i % 4 == 0 else rng.choice(groups)["sites"]
        target[action].append(domain)
    return data, listed


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="upper bound on the loop")
    args = parser.parse_args()
    rng = random.Random(42)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        sessions = session_factory(open_engine(url))
        migrate(sessions.kw["bind"])
        with sessions() as db:
            seed_demo(db)
            data, listed = build_policy(args.entries, rng)
            t0 = time.perf_counter()
            import_policy(db, render_document(data), file="bench", author="bench",
                          decision=CouncilDecision("99", "2026-11-24"))
            import_seconds = time.perf_counter() - t0
            lesson = dt.datetime(2026, 11, 25, 10, 0, tzinfo=ZoneInfo("Asia/Bishkek"))
            start = lesson.astimezone(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=5)
            open_session(db, room="lab1", teacher="aigul", class_id="7B", minutes=45,
                         starts_at=start)

        engine = Engine.from_database(sessions)
        compile_times = []
        for _ in range(7):
            t0 = time.perf_counter()
            engine.refresh(force=True)
            compile_times.append(time.perf_counter() - t0)

        clients = ["10.10.1.101", "10.10.1.150", "10.10.2.7", "10.10.9.20", "192.168.77.5",
                   "10.10.1.10"]
        hosts = []
        for _ in range(5000):
            roll = rng.random()
            if roll < 0.2:
                hosts.append(rng.choice(["www.", "m.", ""]) + rng.choice(listed))
            elif roll < 0.3:
                hosts.append(rng.choice(["www.bilimland.kz", "lib.kg", "facebook.com",
                                         "www.youtube.com", "pornhub.com", "daryn.online"]))
            else:
                hosts.append(random_domain(rng, rng.choice((3, 4, 5))))
        queries = [(rng.choice(clients), rng.choice(hosts)) for _ in range(1000)]

        decide = engine.decide
        for client, host in queries:  # warm up: client memo, local-time cache
            decide(client, host, None, lesson)
        per_call: list[float] = []
        done = 0
        deadline = time.monotonic() + args.seconds
        batch = 100
        while done < args.decisions and time.monotonic() < deadline:
            i = rng.randrange(0, len(queries) - batch)
            chunk = queries[i:i + batch]
            t0 = time.perf_counter_ns()
            for client, host in chunk:
                decide(client, host, None, lesson)
            per_call.append((time.perf_counter_ns() - t0) / batch / 1000)
            done += batch
        now_calls = []
        for _ in range(200):
            t0 = time.perf_counter_ns()
            for client, host in queries[:batch]:
                decide(client, host)
            now_calls.append((time.perf_counter_ns() - t0) / batch / 1000)

    median = statistics.median(per_call)
    print(f"policy: demo school + {args.entries} custom site-list entries "
          f"(import as a revision: {import_seconds * 1000:.0f} ms)")
    print(f"decisions timed: {done} in batches of {batch}")
    print(f"decide() median  {median:6.2f} µs   (goal ≤ 5 µs)  {'OK' if median <= 5 else 'MISSED'}")
    print(f"decide() p99     {percentile(per_call, 0.99):6.2f} µs")
    print(f"decide(at=now)   {statistics.median(now_calls):6.2f} µs median")
    recompile = statistics.median(compile_times) * 1000
    print(f"snapshot recompile median {recompile:6.1f} ms  (goal ≤ 200 ms)  "
          f"{'OK' if recompile <= 200 else 'MISSED'}   min {min(compile_times) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
