"""Load and measurement helpers for bench/proxy_bench.sh (measures; checks nothing).

    proxy_load.py conns PROXY_PORT TARGET_PORT SECONDS CONCURRENCY
        new HTTPS connections per second through CONNECT (handshake, one small GET, close)
    proxy_load.py latency PROXY_PORT|direct TARGET_PORT RATE SECONDS
        p50 and p99 of HTTP request latency at a fixed request rate (keep-alive connections)
    proxy_load.py rss PID
        memory of PID and all its descendants: the sum of their proportional set sizes (Pss:
        pages shared between forked workers count once), in MB
    proxy_load.py cpu PID
        CPU seconds (user + system) used so far by PID and all its descendants: the work a
        proxy does per request, which a busy machine disturbs far less than requests/s

Only loopback addresses are used; every loop ends after SECONDS.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import socket
import ssl
import sys
import threading
import time
from pathlib import Path

HOST = "localhost"


async def one_connection(proxy_port: int, target_port: int, context: ssl.SSLContext) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
    try:
        writer.write(f"CONNECT {HOST}:{target_port} HTTP/1.1\r\nHost: {HOST}:{target_port}"
                     f"\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200" not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head[:40])
        await writer.start_tls(context, server_hostname=HOST)
        writer.write(f"GET /1k HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        await reader.read()
    finally:
        writer.close()


async def conns(proxy_port: int, target_port: int, seconds: float, concurrency: int) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    done = errors = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(one_connection(proxy_port, target_port, context), 10)
                done += 1
            except (TimeoutError, OSError, ConnectionError, ssl.SSLError):
                errors += 1

    start = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - start
    print(f"{done / elapsed:.0f} {errors}")


def latency(proxy_port: int | None, target_port: int, rate: float, seconds: float) -> None:
    threads = 4
    per_thread = rate / threads
    samples: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        if proxy_port is None:
            conn = http.client.HTTPConnection("127.0.0.1", target_port, timeout=5)
            path = "/1k"
        else:
            conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=5)
            path = f"http://{HOST}:{target_port}/1k"
        conn.connect()
        # Browsers set TCP_NODELAY; without it Nagle and delayed ACKs add 40 ms steps that
        # measure the client's socket, not the proxy.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local: list[float] = []
        interval = 1.0 / per_thread
        next_at = time.monotonic()
        end = next_at + seconds
        while next_at < end:
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            t0 = time.perf_counter()
            conn.request("GET", path, headers={"Host": f"{HOST}:{target_port}"})
            conn.getresponse().read()
            local.append((time.perf_counter() - t0) * 1000)
            next_at += interval
        with lock:
            samples.extend(local)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    samples.sort()
    p50 = samples[len(samples) // 2]
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{p50:.3f} {p99:.3f} {len(samples)}")


def tree(pid: int) -> list[int]:
    """PID and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu(pid: int) -> None:
    ticks = 0
    for current in tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    print(f"{ticks / os.sysconf('SC_CLK_TCK'):.2f}")


def rss(pid: int) -> None:
    total = 0
    for current in tree(pid):
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    print(f"{total / 1024:.0f}")


def main() -> None:
    what, args = sys.argv[1], sys.argv[2:]
    if what == "conns":
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        asyncio.run(conns(int(args[0]), int(args[1]), float(args[2]), int(args[3])))
    elif what == "latency":
        latency(None if args[0] == "direct" else int(args[0]), int(args[1]), float(args[2]),
                float(args[3]))
    elif what == "rss":
        rss(int(args[0]))
    elif what == "cpu":
        cpu(int(args[0]))
    else:
        raise SystemExit(__doc__)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
