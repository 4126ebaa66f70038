"""DNS messages as bytes: the question reader of the hot path, and answers built by hand.

Every query is read here, so the common case is read without dnslib: :func:`read_question`
walks the header, the question and an optional OPT record straight from the bytes. Whatever
it does not recognise as a plain query (compression pointers in the question, odd label bytes,
several sections, truncation) it leaves to :func:`parse_query`, which asks dnslib. The two
agree on every packet: the property test in ``tests/gateway/dns/test_dns_wire.py`` holds the
fast reader to dnslib's reading.

Answers that the gateway makes itself (refusals, block answers, SERVFAIL) are a header, the
question and at most one record, so they are put together from bytes here too; unusual ones
(a safe-search rewrite) are built with dnslib by their link.

Words as in RFC 1035: ``qname``, ``qtype``, ``rcode``; ``base`` is a response as the cache keeps
it (ID 0, the lower-case question, no OPT record), which :func:`finalize` fits to one query.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import NamedTuple

from dnslib import QTYPE, DNSBuffer, DNSError, DNSHeader, DNSQuestion, DNSRecord


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


class QType(IntEnum):
    A = 1
    NS = 2
    CNAME = 5
    SOA = 6
    PTR = 12
    MX = 15
    TXT = 16
    AAAA = 28
    SRV = 33
    DNAME = 39
    OPT = 41
    RRSIG = 46
    SVCB = 64
    HTTPS = 65
    ANY = 255


CLASS_IN = 1

# Header flags (the second 16-bit word).
QR = 0x8000
OPCODE_MASK = 0x7800
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
AD = 0x0020
CD = 0x0010

EDNS_UDP_SIZE = 1232  # the DNS flag day 2020 size: no IP fragmentation on any common path
EDNS_DO = 0x8000
PLAIN_UDP_SIZE = 512  # RFC 1035 limit for a client that sent no OPT record

QTYPE_TEXT: dict[int, str] = {code: QTYPE.get(code) for code in range(0, 300)}

_HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, TTL, rdlength after the owner name
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")

# Bytes dnslib prints as themselves in a name (33..126); any other byte it escapes as \DDD,
# which the fast reader leaves to dnslib.
_PRINTABLE = bytes(range(33, 127))


class FormError(Exception):
    """The packet is not a DNS query that can be read."""


class Question(NamedTuple):
    """What the resolver needs from a query, read once.

    ``qname`` is lower-case text without the trailing dot (the root is ``""``), as dnslib
    prints it: a byte outside 33..126 is ``\\DDD``. ``wire`` is the question section in lower
    case and without compression, which is also the cache key. ``qend`` is where the
    question ends in the packet the client sent.
    """

    id: int
    flags: int
    qname: str
    qtype: int
    qclass: int
    wire: bytes
    qend: int
    edns: bool
    udp_size: int  # 512 when the client sent no OPT record
    do: bool
    edns_version: int


_SEEN_MAX = 8192  # packets remembered by read_question: at most 8192 × 512 bytes
_SEEN_BYTES = 512
_seen: dict[bytes, tuple] = {}
_new_question = tuple.__new__  # Question(...) without NamedTuple's Python-level __new__


def read_question(data: bytes) -> Question | None:
    """Read a plain query fast, or return None to leave the packet to dnslib.

    Plain means: one question whose name has no compression pointer and only bytes that
    dnslib prints as themselves, no answer or authority records, and at most one additional
    record, an OPT record owned by the root. Never raises.

    Everything but the ID and the flags depends only on the bytes after them, and clients ask
    the same names over and over: a packet seen before is answered from memory, without
    walking its labels again.
    """
    seen = _seen.get(data[4:])
    if seen is not None:
        return _new_question(Question, (data[0] << 8 | data[1], data[2] << 8 | data[3], *seen))
    question = _read_question(data)
    if question is not None and len(data) <= _SEEN_BYTES:  # big packets would bloat memory
        if len(_seen) >= _SEEN_MAX:
            _seen.clear()
        _seen[data[4:]] = question[2:]
    return question


def _read_question(data: bytes) -> Question | None:
    n = len(data)
    if n < 17:
        return None
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if qdcount != 1 or ancount or nscount or arcount > 1:
        return None
    i = 12
    labels = []
    while True:
        if i >= n:
            return None
        length = data[i]
        if length == 0:
            break
        if length > 63:  # a pointer or an extended label type
            return None
        labels.append(data[i + 1:i + 1 + length])
        i += length + 1
    qend = i + 5
    if qend > n:
        return None
    raw = b".".join(labels)
    if raw.translate(None, _PRINTABLE):
        return None
    qtype, qclass = _TYPE_CLASS.unpack_from(data, i + 1)
    if not arcount:
        return Question(qid, flags, raw.lower().decode(), qtype, qclass,
                        data[12:i].lower() + data[i:qend], qend, False, PLAIN_UDP_SIZE, False, 0)
    # The OPT record: root owner, then type, class = UDP size, TTL = ext-rcode/version/flags.
    if qend + 11 > n or data[qend] != 0:
        return None
    rtype, udp_size, ttl, rdlength = _RR_FIXED.unpack_from(data, qend + 1)
    if rtype != QType.OPT:
        return None
    start = qend + 11
    if start + rdlength > n:
        return None
    # The options, read as dnslib reads them: while more than four bytes are left.
    pos = 0
    while rdlength - pos > 4:
        (optlen,) = _U16.unpack_from(data, start + pos + 2)
        pos += 4 + optlen
        if pos > rdlength:
            return None
    return Question(qid, flags, raw.lower().decode(), qtype, qclass,
                    data[12:i].lower() + data[i:qend], qend, True, udp_size, bool(ttl & EDNS_DO),
                    (ttl >> 16) & 0xFF)


def parse_query(data: bytes) -> Question:
    """Read any query: the fast reader, else dnslib. Raises :class:`FormError`."""
    question = read_question(data)
    if question is not None:
        return question
    return question_from_dnslib(data)


def question_from_dnslib(data: bytes) -> Question:
    """The slow path: dnslib reads the whole packet. Raises :class:`FormError`."""
    try:
        record = DNSRecord.parse(data)
        # Parse the header and question again to learn where the question ends.
        buffer = DNSBuffer(data)
        DNSHeader.parse(buffer)
        if record.header.q < 1:
            raise FormError("no question")
        question = DNSQuestion.parse(buffer)
        qend = buffer.offset
    except FormError:
        raise
    except (DNSError, Exception) as exc:  # dnslib can also raise RecursionError, ValueError…
        raise FormError(str(exc)) from None
    if record.header.q != 1:
        raise FormError(f"{record.header.q} questions")
    labels = question.qname.label
    # Lower-case the label bytes only: a length byte of 65..90 is no letter.
    wire = b"".join(bytes((len(label),)) + bytes(label).lower() for label in labels)
    wire += b"\x00" + _TYPE_CLASS.pack(question.qtype, question.qclass)
    opts = [rr for rr in record.ar if rr.rtype == QType.OPT]
    if len(opts) > 1:
        raise FormError("more than one OPT record")  # RFC 6891 section 6.1.1
    qname = str(question.qname).lower()
    qname = qname[:-1] if qname.endswith(".") else qname
    if opts:
        opt = opts[0]
        return Question(record.header.id, record.header.bitmap, qname, question.qtype,
                        question.qclass, wire, qend, True, opt.rclass, bool(opt.ttl & EDNS_DO),
                        (opt.ttl >> 16) & 0xFF)
    return Question(record.header.id, record.header.bitmap, qname, question.qtype,
                    question.qclass, wire, qend, False, PLAIN_UDP_SIZE, False, 0)


def header_of(data: bytes) -> tuple[int, int] | None:
    """(ID, flags) of a packet that has a whole header, else None."""
    if len(data) < 12:
        return None
    return _U16.unpack_from(data, 0)[0], _U16.unpack_from(data, 2)[0]


# --- answers made here ------------------------------------------------------------------------

def make_response(question: Question, rcode: int, answers: bytes = b"", ancount: int = 0,
                  *, authority: bytes = b"", nscount: int = 0, aa: bool = False) -> bytes:
    """A base response (ID 0) to ``question`` with ready-made answer records."""
    flags = QR | RA | (question.flags & (RD | CD)) | (AA if aa else 0) | rcode
    return (_HEADER.pack(0, flags, 1, ancount, nscount, 0) + question.wire + answers
            + authority)


def make_error(data: bytes, rcode: int) -> bytes | None:
    """FORMERR/NOTIMP/REFUSED for a packet that could not be read: header only, same ID.

    None for a packet that must be dropped instead: shorter than a header, or a response
    (answering responses would let two servers bounce packets at each other forever).
    """
    header = header_of(data)
    if header is None or header[1] & QR:
        return None
    qid, flags = header
    return _HEADER.pack(qid, QR | RA | (flags & (RD | OPCODE_MASK)) | rcode, 0, 0, 0, 0)


def record(rtype: int, ttl: int, rdata: bytes) -> bytes:
    """One answer record owned by the question's name (a pointer to offset 12)."""
    return b"\xc0\x0c" + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def encode_name(name: str) -> bytes:
    """``a.example`` as uncompressed wire labels; the root is ``""``."""
    out = bytearray()
    for label in name.strip(".").split(".") if name.strip(".") else ():
        raw = label.encode("ascii")
        if not 0 < len(raw) <= 63:
            raise ValueError(f"bad label in {name!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def opt_record(do: bool) -> bytes:
    """Our OPT record: root owner, UDP size 1232, version 0, DO as the client asked."""
    return b"\x00" + struct.pack("!HHIH", QType.OPT, EDNS_UDP_SIZE, EDNS_DO if do else 0, 0)


_OPT_PLAIN = opt_record(False)
_OPT_DO = opt_record(True)


def with_opt(base: bytes, do: bool) -> bytes:
    """``base`` with our OPT record appended (ARCOUNT + 1)."""
    arcount = base[10] << 8 | base[11]
    arcount += 1
    return (base[:10] + bytes((arcount >> 8, arcount & 0xFF)) + base[12:]
            + (_OPT_DO if do else _OPT_PLAIN))


def finalize(question: Question, data: bytes, base: bytes, base_edns: bytes | None,
             udp: bool) -> bytearray:
    """Fit a base response to the query in ``data``: its ID, RD bit, question spelling (0x20
    case) and EDNS; over UDP, a response larger than the client takes is truncated (TC) so
    that it asks again over TCP."""
    if question.edns:
        wire = base_edns if base_edns is not None else with_opt(base, question.do)
        limit = min(max(question.udp_size, PLAIN_UDP_SIZE), EDNS_UDP_SIZE)
    else:
        wire = base
        limit = PLAIN_UDP_SIZE
    qend = question.qend
    if udp and len(wire) > limit:
        wire = truncated(question, wire)
    out = bytearray(wire)
    out[0:2] = data[0:2]  # the client's ID
    out[2] = (out[2] & 0xFE) | (data[2] & 0x01)  # RD as the client set it
    if qend - 12 == len(question.wire):
        out[12:qend] = data[12:qend]  # the client's own spelling of the name
    return out


def truncated(question: Question, wire: bytes) -> bytes:
    """Header and question only, with TC set (and the OPT record if the client sent one)."""
    flags = (_U16.unpack_from(wire, 2)[0] | TC)
    head = _HEADER.pack(0, flags, 1, 0, 0, 1 if question.edns else 0)
    tail = (_OPT_DO if question.do else _OPT_PLAIN) if question.edns else b""
    return head + question.wire + tail


def make_query(question_wire: bytes, qid: int, *, do: bool, cd: bool = False) -> bytes:
    """The query sent upstream: RD, our own OPT record of 1232 bytes, DO as the client's."""
    flags = RD | (CD if cd else 0)
    return _HEADER.pack(qid, flags, 1, 0, 0, 1) + question_wire + (_OPT_DO if do else _OPT_PLAIN)


# --- reading responses from upstream ------------------------------------------------------------

def same_question(data: bytes, question_wire: bytes) -> bool:
    """Whether the question of ``data`` is ``question_wire`` (a name in any case; the type and
    class bytes are compared as they are, since ``A`` is 0x41 and must not become 0x61)."""
    end = 12 + len(question_wire)
    return (data[end - 4:end] == question_wire[-4:]
            and data[12:end - 4].lower() == question_wire[:-4])


class Scanned(NamedTuple):
    """An upstream response read for the cache (see :func:`scan_response`)."""

    rcode: int
    base: bytes  # ID 0, additional section removed
    ttl_offsets: tuple[int, ...]  # where each TTL field sits in ``base``
    ttls: tuple[int, ...]  # their values as received (negative answers: per RFC 2308)
    names: tuple[str, ...]  # CNAME/DNAME targets and SVCB/HTTPS target names in the answer
    negative: bool  # NXDOMAIN, or NOERROR without an answer of the asked type (NODATA)
    soa_ttl: int | None  # RFC 2308 negative TTL: min(SOA TTL, SOA MINIMUM), if an SOA came


def scan_response(data: bytes, question_wire: bytes) -> Scanned | None:
    """Read an upstream response to our question; None if it is not one (wrong question,
    malformed, cut short). Names are followed through compression pointers with a bound on
    the number of jumps, so no packet can make this loop."""
    n = len(data)
    if n < 12:
        return None
    _qid, flags, qdcount, ancount, nscount, _arcount = _HEADER.unpack_from(data)
    if not flags & QR or qdcount != 1:
        return None
    qend = 12 + len(question_wire)
    if not same_question(data, question_wire):
        return None
    qtype = _U16.unpack_from(question_wire, len(question_wire) - 4)[0]
    pos = qend
    offsets: list[int] = []
    ttls: list[int] = []
    names: list[str] = []
    answered = False
    soa_ttl = None
    try:
        for section, count in ((0, ancount), (1, nscount)):
            for _ in range(count):
                pos = read_name(data, pos)[1]  # followed, not skipped: no loop goes to a client
                rtype, _rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, pos)
                ttl_at = pos + 4
                rdata = pos + 10
                pos = rdata + rdlength
                if pos > n:
                    return None
                offsets.append(ttl_at)
                ttls.append(ttl & 0x7FFFFFFF)  # RFC 2181: a TTL with the top bit set is 0
                if ttl & 0x80000000:
                    ttls[-1] = 0
                if section == 0:
                    if rtype == qtype or qtype == QType.ANY:
                        answered = True
                    if rtype in (QType.CNAME, QType.DNAME):
                        names.append(read_name(data, rdata)[0])
                        answered = answered or rtype == QType.CNAME
                    elif rtype in (QType.HTTPS, QType.SVCB) and rdlength > 2:
                        target = read_name(data, rdata + 2)[0]
                        if target:
                            names.append(target)
                elif rtype == QType.SOA:
                    # RFC 2308 section 5: the negative TTL is the SOA's MINIMUM capped by its TTL.
                    at = skip_name(data, skip_name(data, rdata))
                    minimum = _U32.unpack_from(data, at + 16)[0]
                    soa_ttl = min(ttls[-1], minimum)
                    ttls[-1] = soa_ttl
    except (struct.error, IndexError, ValueError):
        return None
    rcode = flags & 0x000F
    negative = rcode == Rcode.NXDOMAIN or (rcode == Rcode.NOERROR and not answered)
    base = (_HEADER.pack(0, flags & ~(AA | TC), 1, ancount, nscount, 0) + data[12:pos])
    return Scanned(rcode, base, tuple(offsets), tuple(ttls), tuple(names), negative, soa_ttl)


_MAX_JUMPS = 64


def skip_name(data: bytes, pos: int) -> int:
    """The offset after the (possibly compressed) name at ``pos``."""
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length >= 0xC0:
            if pos + 2 > len(data):
                raise ValueError("pointer cut short")
            return pos + 2
        if length > 63:
            raise ValueError("extended label type")
        pos += length + 1


def read_name(data: bytes, pos: int) -> tuple[str, int]:
    """The name at ``pos`` as lower-case text (no trailing dot) and the offset after it."""
    labels = []
    end = -1
    jumps = 0
    while True:
        length = data[pos]
        if length == 0:
            if end < 0:
                end = pos + 1
            break
        if length >= 0xC0:
            if end < 0:
                end = pos + 2
            target = (length & 0x3F) << 8 | data[pos + 1]
            jumps += 1
            if jumps > _MAX_JUMPS or target >= pos:  # only backwards: no loops
                raise ValueError("compression loop")
            pos = target
            continue
        if length > 63:
            raise ValueError("extended label type")
        labels.append(data[pos + 1:pos + 1 + length])
        pos += length + 1
    return b".".join(labels).decode("ascii", "backslashreplace").lower(), end
