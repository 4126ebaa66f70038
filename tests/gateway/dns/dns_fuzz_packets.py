"""Malformed and mutated DNS packets, for the fuzz test and ``bench/dns_fuzz.py``.

Each packet starts as a valid query and is then damaged in one of the ways real attackers and
broken clients damage them: cut short, bytes flipped, absurd section counts, compression
pointers that loop or point forwards, labels that are too long or run off the end, the QR bit
or an odd opcode set, an OPT record with a bad length, or plain noise. Seeded, so that a
failure can be replayed.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

import dns.message

NAMES = ["lib.kg", "bilimland.kz", "pornhub.com", "www.google.kg", "a.b.c.d.e.f.lib.kg",
         "use-application-dns.net", "x" * 63 + ".kg", "dns.google", "xn--80aaxgbbh0b.kg"]
TYPES = ["A", "AAAA", "HTTPS", "TXT", "MX", "CNAME", "ANY", "SOA", "PTR", "SVCB"]


def valid_queries(rng: random.Random, count: int = 64) -> list[bytes]:
    out = []
    for _ in range(count):
        query = dns.message.make_query(rng.choice(NAMES), rng.choice(TYPES),
                                       use_edns=rng.choice([False, 0]),
                                       want_dnssec=rng.random() < 0.2, id=rng.randrange(65536))
        out.append(query.to_wire())
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(12)
    raw = bytearray(data)
    if kind == 0:  # truncated anywhere, header included
        return bytes(raw[:rng.randrange(len(raw))])
    if kind == 1:  # a few bytes flipped
        for _ in range(rng.randint(1, 5)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if kind == 2:  # absurd counts
        struct.pack_into("!HHHH", raw, 4, *(rng.choice([0, 1, 2, 255, 65535]) for _ in range(4)))
        return bytes(raw)
    if kind == 3:  # a compression pointer in the question: to itself, forwards, into the header
        at = rng.randrange(12, max(13, len(raw) - 6))
        raw[at:at + 2] = struct.pack("!H", 0xC000 | rng.choice([at, at + 2, 0, 4, 12, 0x3FFF]))
        return bytes(raw)
    if kind == 4:  # a pointer loop between two names
        return bytes(raw[:12]) + b"\x01a\xc0\x0e\x00\x01\x00\x01"
    if kind == 5:  # a label longer than 63, or one that runs past the end
        at = 12
        raw[at] = rng.choice([64, 100, 191, 200, 250])
        return bytes(raw)
    if kind == 6:  # QR set, or an opcode nobody serves
        raw[2] = (raw[2] | 0x80) if rng.random() < 0.5 else (raw[2] | (rng.randrange(1, 16) << 3))
        return bytes(raw)
    if kind == 7:  # an OPT record whose lengths lie
        return data + b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00" + struct.pack(
            "!H", rng.randrange(65536)) + bytes(rng.randrange(256) for _ in range(rng.randrange(8)))
    if kind == 8:  # noise
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 600)))
    if kind == 9:  # a name of 255 one-byte labels (far over the 255-byte limit)
        return bytes(raw[:12]) + b"\x01z" * 200 + b"\x00\x00\x01\x00\x01"
    if kind == 10:  # trailing garbage
        return data + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    # an extended-label or reserved length byte in the middle of the name
    at = rng.randrange(12, max(13, len(raw) - 5))
    raw[at] = rng.choice([0x40, 0x41, 0x80, 0xBF])
    return bytes(raw)


def mutated_packets(seed: int, count: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    queries = valid_queries(rng)
    for _ in range(count):
        yield mutate(rng, rng.choice(queries))
