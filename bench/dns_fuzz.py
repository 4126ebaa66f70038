"""The full fuzz run of issue 6: 100,000 or more malformed and mutated packets at the resolver.

The resolver runs in this process (a thread, its own event loop) on 127.0.0.1 with the demo
school and a fake upstream on 127.0.0.77. Every 2,000 packets a valid query must be answered;
the resident memory is printed as it goes and must stay flat. The packets are those of
``tests/gateway/dns/dns_fuzz_packets.py`` (seeded: ``--seed`` replays a run). Exits non-zero
when a valid query goes unanswered, the server logged an error, or memory grew by more than
``--max-growth`` MB after the warm-up.

Run: ``.venv/bin/python bench/dns_fuzz.py [--packets 100000] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import logging
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "gateway" / "dns"))

import dns.message  # noqa: E402
from dns_fake_upstream import FakeUpstream  # noqa: E402
from dns_fuzz_packets import mutated_packets  # noqa: E402
from dns_harness import ZONE, free_port, import_revision, loopback_policy  # noqa: E402

from gateway.config import Config  # noqa: E402
from gateway.dns.service import DnsService  # noqa: E402
from gateway.events.queue import EventQueue  # noqa: E402
from policies.database import migrate, open_engine, session_factory  # noqa: E402
from policies.demo import seed_demo  # noqa: E402

HOST = "127.0.0.1"


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-growth", type=float, default=16.0, help="MB after warm-up")
    args = parser.parse_args()

    errors = Errors()
    logging.getLogger().addHandler(errors)
    work = Path(tempfile.mkdtemp(prefix="kalkan-dns-fuzz-"))
    engine = open_engine(f"sqlite:///{work}/kalkan.db")
    migrate(engine)
    sessions = session_factory(engine)
    with sessions() as db:
        seed_demo(db)
    import_revision(sessions, loopback_policy())
    upstream = FakeUpstream(ZONE, host="127.0.0.77").start()
    config = Config.model_validate({"dns": {"upstreams": [upstream.address]},
                                    "data_dir": str(work)})
    port = free_port(HOST)
    service = DnsService(config, sessions, listen=[(HOST, port)], rate=1e9, burst=1e9,
                         events=EventQueue(2000)).start_in_thread(use_uvloop=True)
    failures = 0
    started = time.monotonic()
    warm = None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((HOST, 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
            sock.setblocking(False)
            for number, packet in enumerate(mutated_packets(args.seed, args.packets), 1):
                try:
                    sock.sendto(packet, (HOST, port))
                except BlockingIOError:
                    time.sleep(0.01)
                if number % 200 == 0:
                    drain(sock)
                if number % 2000 == 0 and not answered(sock, port, number // 2000 % 60000):
                    failures += 1
                    print(f"packet {number}: the valid query was not answered", flush=True)
                if number == 10_000:
                    warm = rss_mb()
                if number % 20_000 == 0:
                    print(f"{number:>9,} packets  {time.monotonic() - started:6.1f} s  "
                          f"RSS {rss_mb():6.1f} MB  FORMERR {service.counters.formerr:,}",
                          flush=True)
            drain(sock)
    finally:
        service.stop_thread()
        upstream.stop()
    growth = rss_mb() - warm if warm is not None else 0.0
    counters = service.counters
    print(f"sent {args.packets:,} packets in {time.monotonic() - started:.1f} s; server saw "
          f"{counters.queries:,}, answered FORMERR {counters.formerr:,}, SERVFAIL "
          f"{counters.servfail:,}; logged errors {errors.count}; unanswered valid queries "
          f"{failures}; memory growth after warm-up {growth:+.1f} MB")
    ok = failures == 0 and errors.count == 0 and growth <= args.max_growth
    print("result:", "OK" if ok else "FAILED")
    return 0 if ok else 1


def drain(sock: socket.socket) -> None:
    time.sleep(0.002)
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return


def answered(sock: socket.socket, port: int, qid: int) -> bool:
    """A valid query gets its answer: three tries of a second each, as a stub resolver would
    (a UDP answer may be lost on a loopback flooded by this very run)."""
    for _ in range(3):
        sock.sendto(dns.message.make_query("lib.kg", "A", id=qid).to_wire(), (HOST, port))
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid and data[7] == 1:
                return True
    return False


if __name__ == "__main__":
    sys.exit(main())
