"""Malformed packets get FORMERR or silence, never a crash: the server keeps answering valid
queries through 20,000 broken ones, and its memory stays flat. ``bench/dns_fuzz.py`` sends
100,000 and more."""

from __future__ import annotations

import logging
import random
import socket
import struct
import time
from pathlib import Path

import dns.message
from dns_fuzz_packets import mutated_packets
from dns_harness import STUDENT, ask, port_of, rcode, records

from gateway.events.queue import EventQueue

pytest_plugins = ["dns_fixtures"]

PACKETS = 20_000


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


def valid_answer(sock: socket.socket, port: int, qid: int) -> dns.message.Message:
    """Send a valid query and wait for its answer among the fuzz answers: three tries of a
    second each, as a stub resolver would (the flooded loopback may lose a datagram)."""
    for _ in range(3):
        sock.sendto(dns.message.make_query("lib.kg", "A", id=qid).to_wire(), (STUDENT, port))
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65535)
            except BlockingIOError:
                time.sleep(0.001)
                continue
            if len(data) >= 12 and struct.unpack("!H", data[:2])[0] == qid and data[7] == 1:
                return dns.message.from_wire(data)
    raise AssertionError(f"no answer to the valid query {qid} in three tries")


def test_malformed_packets_never_stop_the_server(start_server, caplog):
    caplog.set_level(logging.ERROR)
    server = start_server(rate=1e9, burst=1e9, events=EventQueue(2000))
    port = port_of(server)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((STUDENT, 0))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)
        sock.setblocking(False)
        rss_after_warmup = None
        for number, packet in enumerate(mutated_packets(seed=6, count=PACKETS)):
            try:
                sock.sendto(packet, (STUDENT, port))
            except BlockingIOError:
                time.sleep(0.01)
            if number % 200 == 199:  # pace, and read what came back
                _drain(sock)
            if number % 2000 == 1999:
                answer = valid_answer(sock, port, 50000 + number // 2000)
                assert records(answer) == ["A 192.0.2.11"]
            if number == 4999:
                rss_after_warmup = rss_mb()
        _drain(sock)
    assert server.counters.queries >= PACKETS * 0.95  # a few may be lost on the loopback
    assert server.counters.formerr > 1000
    assert rss_mb() - rss_after_warmup < 16, "memory grows with malformed packets"
    assert not [r for r in caplog.records if "error while answering" in r.getMessage()]
    assert rcode(ask(server, "bilimland.kz")) == "NOERROR"


def _drain(sock: socket.socket) -> None:
    time.sleep(0.002)
    while True:
        try:
            sock.recv(65535)
        except BlockingIOError:
            return


def test_malformed_tcp_streams_never_stop_the_server(start_server):
    server = start_server(rate=1e9, burst=1e9, events=EventQueue(2000))
    port = port_of(server)
    rng = random.Random(7)
    packets = list(mutated_packets(seed=8, count=300))
    for number, packet in enumerate(packets):
        with socket.create_connection((STUDENT, port), timeout=2) as conn:
            kind = number % 5
            if kind == 0:  # a frame longer than what follows, then gone
                conn.sendall(struct.pack("!H", len(packet) + 100) + packet)
            elif kind == 1:  # a zero-length frame: the server closes
                conn.sendall(b"\x00\x00" + packet)
            elif kind == 2:  # half a length prefix
                conn.sendall(b"\x01")
            elif kind == 3:  # several broken frames in one write
                conn.sendall(b"".join(struct.pack("!H", len(p)) + p for p in packets[:5]))
            else:  # noise
                conn.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
    assert records(ask(server, "lib.kg", tcp=True)) == ["A 192.0.2.11"]
