"""kalkan's resolver against dnsmasq, side by side, on this machine (issue 6).

Both forward to the same fake upstream on a loopback address and both know the same
1,000,000 blocked names (dnsmasq as a hosts file, kalkan as its blocklist index), and both
get the same query file from dnsperf: 80 % allowed names (a few thousand, repeated, so
mostly cache hits), 20 % blocked names. kalkan runs a student policy with a session open
(client 127.0.0.1 is in a student room), so every query goes through ``decide()`` and puts
an access event on the queue, as in a school.

Prints queries per second, average and p99 latency, lost queries, CPU time per query, and
resident (RSS) and proportional (PSS) memory for both, and ``ratio kalkan/dnsmasq QPS: X.XX``.
On a busy machine QPS swings with the neighbours; CPU time per query swings much less, so
``ratio dnsmasq/kalkan CPU per query`` is printed too (it tells what QPS ratio to expect where
the server, not dnsperf or the neighbours, is the limit). Goals: ratio ≥ 0.8, no lost
queries, kalkan's RSS ≤ 1.5 × dnsmasq's. Run ``bench/dns_bench.sh`` (it installs dnsmasq
and dnsperf); all traffic stays on 127.0.0.0/8. This measures speed only; the tests check
correctness.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "gateway" / "dns"))

from dns_fake_upstream import FakeUpstream  # noqa: E402

UPSTREAM_HOST = "127.0.0.77"  # the fake upstream; nothing here leaves the loopback
SERVER_HOST = "127.0.0.1"
TLDS = ["com", "net", "org", "ru", "kz", "kg", "uz", "info", "xyz", "top"]
ALLOWED_ZONE = "allowed-bench.kg"


def free_port(host: str) -> int:
    """A port free for both UDP and TCP on ``host``."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def blocked_names(count: int, seed: int = 6) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    names: set[str] = set()
    while len(names) < count:
        label = "".join(rng.choices(letters, k=rng.randint(6, 14)))
        if rng.random() < 0.3:
            label = "".join(rng.choices(letters, k=rng.randint(3, 8))) + "." + label
        names.add(f"{label}.{rng.choice(TLDS)}")
    return sorted(names)


def write_inputs(work: Path, domains: int, allowed: int, queries: int) -> tuple[list[str], Path]:
    print(f"generating {domains:,} blocked names …", flush=True)
    blocked = blocked_names(domains)
    hosts = work / "blocked.hosts"
    with hosts.open("w") as out:
        for name in blocked:
            out.write(f"0.0.0.0 {name}\n")
    rng = random.Random(7)
    allowed_names = [f"www{i}.{ALLOWED_ZONE}" for i in range(allowed)]
    query_file = work / "queries.txt"
    with query_file.open("w") as out:
        for _ in range(queries):
            if rng.random() < 0.8:
                out.write(f"{rng.choice(allowed_names)} A\n")
            else:
                out.write(f"{rng.choice(blocked)} A\n")
    return blocked, query_file


def build_kalkan_index(work: Path, blocked: list[str]) -> Path:
    """The same names as kalkan's blocklist index (blocklists/index.py), category adult."""
    from blocklists.entries import ListEntry
    from blocklists.index import build_index

    path = work / "blocklists.idx"
    started = time.perf_counter()
    build_index([("bench", (ListEntry(name, "adult") for name in blocked))], path)
    print(f"built the blocklist index ({path.stat().st_size / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    return path


def prepare_database(work: Path) -> str:
    """Demo school, plus a room for 127.0.0.0/8 whose students have a session open now."""
    from policies.database import migrate, open_engine, session_factory
    from policies.decision import CouncilDecision
    from policies.demo import demo_policy_data, seed_demo
    from policies.document import render_document
    from policies.revisions import import_policy
    from policies.sessions import open_session

    url = f"sqlite:///{work}/kalkan.db"
    engine = open_engine(url)
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as db:
        seed_demo(db)
        data = demo_policy_data()
        for group in data["groups"]:
            if group["id"] == "middle":
                group["schedule"] = []  # the benchmark may run at night
        data["rooms"].append({"id": "bench", "name": "Benchmark lab", "default_group": "middle",
                              "networks": ["127.0.0.0/8"]})
        import_policy(db, render_document(data), file="bench", author="bench",
                      decision=CouncilDecision("bench", "2026-01-01"))
        open_session(db, room="bench", teacher="aigul", class_id="7B", minutes=720)
    engine.dispose()
    return url


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (kalkan's workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(c) for c in children)]


def rss_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB of ``pid`` and its children (kalkan's workers), summed."""
    rss = pss = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its children (kalkan's workers), all threads."""
    ticks = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for_dns(port: int, timeout: float = 60.0) -> None:
    """Until the server at ``port`` answers a query (any answer)."""
    query = bytes.fromhex("abcd01000001000000000000") + b"\x04ping\x05bench\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            sock.sendto(query, (SERVER_HOST, port))
            try:
                sock.recv(512)
                return
            except OSError:
                time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}")


DNSPERF_FIELDS = {
    "sent": r"Queries sent:\s+(\d+)",
    "completed": r"Queries completed:\s+(\d+)",
    "lost": r"Queries lost:\s+(\d+)",
    "qps": r"Queries per second:\s+([\d.]+)",
    "avg": r"Average Latency \(s\):\s+([\d.]+)",
}


def run_dnsperf(port: int, query_file: Path, seconds: float, clients: int,
                outstanding: int, verbose_log: Path | None) -> dict[str, float]:
    command = ["dnsperf", "-s", SERVER_HOST, "-p", str(port), "-d", str(query_file),
               "-l", str(seconds), "-c", str(clients), "-q", str(outstanding)]
    if verbose_log is not None:
        command.append("-v")
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True,
                       timeout=seconds + 60)
        out.seek(0)
        text = out.read()
    result: dict[str, float] = {}
    for key, pattern in DNSPERF_FIELDS.items():
        match = re.search(pattern, text)
        result[key] = float(match.group(1)) if match else float("nan")
    if verbose_log is not None:
        # -v prints one line per answer: "> NOERROR name A 0.000123"; the last field is latency.
        latencies = [float(line.rsplit(None, 1)[1]) for line in text.splitlines()
                     if line.startswith(">") and _is_number(line.rsplit(None, 1)[-1])]
        if latencies:
            latencies.sort()
            result["p99"] = latencies[int(0.99 * (len(latencies) - 1))]
            result["p50"] = statistics.median(latencies)
    return result


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def start_dnsmasq(work: Path, port: int, upstream_port: int, hosts: Path) -> subprocess.Popen:
    command = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
               "--no-hosts", f"--port={port}", f"--listen-address={SERVER_HOST}",
               "--bind-interfaces", f"--server={UPSTREAM_HOST}#{upstream_port}",
               f"--addn-hosts={hosts}", "--cache-size=10000", "--dns-forward-max=1000",
               "--pid-file=", "--user=root", "--log-facility=-"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_kalkan(work: Path, port: int, upstream_port: int, database_url: str,
                 index: Path, workers: int, write_events: bool) -> subprocess.Popen:
    config = work / "kalkan.yaml"
    config.write_text(
        f'data_dir: "{work}"\n'
        f'database:\n  url: "{database_url}"\n'
        f'dns:\n  listen: ["{SERVER_HOST}:{port}"]\n'
        f'  upstreams: ["{UPSTREAM_HOST}:{upstream_port}"]\n'
        f"  block_answer: \"null\"\n  cache_size: 10000\n"
        f"logging:\n  level: warning\n")
    # The rate limit is raised because dnsperf is one client sending tens of thousands of
    # queries a second; the limiter still runs for every query.
    command = [str(ROOT / ".venv" / "bin" / "kalkan"), "--config", str(config), "dns",
               "--workers", str(workers), "--rate-limit", "10000000", "--index", str(index)]
    if not write_events:
        command.append("--no-event-writer")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=None)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=1_000_000)
    parser.add_argument("--allowed", type=int, default=2000, help="distinct allowed names")
    parser.add_argument("--queries", type=int, default=200_000, help="lines in the query file")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4, help="dnsperf -c")
    parser.add_argument("--outstanding", type=int, default=100, help="dnsperf -q")
    parser.add_argument("--workers", type=int, default=1, help="kalkan worker processes")
    parser.add_argument("--no-event-writer", action="store_true",
                        help="measure the resolver alone: events are queued, not written")
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating measured runs per server (noise hurts both alike)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    for tool in ("dnsmasq", "dnsperf"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: run bench/dns_bench.sh, which installs it", file=sys.stderr)
            return 2

    work = args.workdir or Path(tempfile.mkdtemp(prefix="kalkan-dns-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    blocked, query_file = write_inputs(work, args.domains, args.allowed, args.queries)
    index_path = build_kalkan_index(work, blocked)
    database_url = prepare_database(work)
    del blocked

    upstream = FakeUpstream(host=UPSTREAM_HOST, wildcard_a="192.0.2.1").start()
    ports = {name: free_port(SERVER_HOST) for name in ("dnsmasq", "kalkan")}
    processes = {
        "dnsmasq": start_dnsmasq(work, ports["dnsmasq"], upstream.port, work / "blocked.hosts"),
        "kalkan": start_kalkan(work, ports["kalkan"], upstream.port, database_url, index_path,
                               args.workers, not args.no_event_writer),
    }
    totals = {name: {"completed": 0.0, "sent": 0.0, "lost": 0.0, "latency": 0.0,
                     "seconds": 0.0, "cpu": 0.0} for name in processes}
    results: dict[str, dict[str, float]] = {}
    try:
        for name, port in ports.items():
            started = time.monotonic()
            wait_for_dns(port)
            print(f"{name}: answering after {time.monotonic() - started:.1f} s; warming up",
                  flush=True)
            run_dnsperf(port, query_file, 3, args.clients, args.outstanding, None)
        # Rounds alternate between the two, so that a noisy neighbour hurts both alike.
        for round_number in range(1, args.rounds + 1):
            for name, port in ports.items():
                cpu_before = cpu_seconds(processes[name].pid)
                result = run_dnsperf(port, query_file, args.seconds, args.clients,
                                     args.outstanding, None)
                total = totals[name]
                total["cpu"] += cpu_seconds(processes[name].pid) - cpu_before
                total["completed"] += result["completed"]
                total["sent"] += result["sent"]
                total["lost"] += result["lost"]
                total["latency"] += result["avg"] * result["completed"]
                total["seconds"] += result["completed"] / result["qps"]
                print(f"round {round_number}: {name:8} {result['qps']:>9.0f} QPS "
                      f"(dnsperf, {args.seconds:g} s)", flush=True)
            print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        for name, port in ports.items():
            rss, pss = rss_kb(processes[name].pid)
            verbose = run_dnsperf(port, query_file, 5, args.clients, args.outstanding,
                                  work / f"{name}.verbose")
            total = totals[name]
            results[name] = {
                "qps": total["completed"] / total["seconds"],
                "avg": total["latency"] / total["completed"],
                "sent": total["sent"], "lost": total["lost"],
                "cpu_us": total["cpu"] / total["completed"] * 1e6,
                "p50": verbose.get("p50", float("nan")), "p99": verbose.get("p99", float("nan")),
                "rss_mb": rss / 1024, "pss_mb": pss / 1024}
    finally:
        for process in processes.values():
            stop(process)
        upstream.stop()

    print()
    print(f"{'':8} {'QPS':>10} {'avg ms':>8} {'p50 ms':>8} {'p99 ms':>8} {'sent':>10} "
          f"{'lost':>6} {'CPU µs/q':>9} {'RSS MB':>8} {'PSS MB':>8}")
    for name, r in results.items():
        print(f"{name:8} {r['qps']:>10.0f} {r['avg'] * 1000:>8.3f} {r['p50'] * 1000:>8.3f} "
              f"{r['p99'] * 1000:>8.3f} {r['sent']:>10.0f} {r['lost']:>6.0f} "
              f"{r['cpu_us']:>9.1f} {r['rss_mb']:>8.1f} {r['pss_mb']:>8.1f}")
    k, d = results["kalkan"], results["dnsmasq"]
    events = "queued only (--no-event-writer)" if args.no_event_writer else "written to SQLite"
    print(f"kalkan: {args.workers} worker(s), access events {events}; dnsperf -c "
          f"{args.clients} -q {args.outstanding}; {args.rounds} alternating round(s) of "
          f"{args.seconds:g} s each; {args.domains:,} blocked names; p50/p99 from a 5 s "
          f"dnsperf -v run")
    print("RSS and PSS: the sum over kalkan's processes (one per worker); CPU µs/q: the "
          "server's CPU time (all threads, the event writer's included) per answered query")
    print(f"ratio kalkan/dnsmasq PSS: {k['pss_mb'] / d['pss_mb']:.2f}")
    print(f"ratio kalkan/dnsmasq RSS: {k['rss_mb'] / d['rss_mb']:.2f}")
    print(f"ratio dnsmasq/kalkan CPU per query: {d['cpu_us'] / k['cpu_us']:.2f}")
    print(f"ratio kalkan/dnsmasq QPS: {k['qps'] / d['qps']:.2f}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
