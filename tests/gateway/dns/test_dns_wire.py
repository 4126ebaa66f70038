"""The hot path's reading of DNS packets must agree with dnslib on every packet; the answers
the gateway builds from bytes must read back as intended."""

from __future__ import annotations

import struct

import dns.message
import pytest
from dnslib import CNAME, EDNS0, QTYPE, RR, SOA, A, DNSRecord, EDNSOption
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.dns import wire
from gateway.dns.wire import (
    QR,
    RD,
    TC,
    FormError,
    QType,
    Rcode,
    finalize,
    make_error,
    make_query,
    make_response,
    parse_query,
    question_from_dnslib,
    read_question,
    record,
    scan_response,
    with_opt,
)

# --- packets built byte by byte, so that every oddity can be made ------------------------------

printable = st.binary(min_size=1, max_size=20).map(
    lambda b: bytes(33 + x % 94 for x in b))  # what dnslib prints as itself, '.' and '\' too
letters = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
                  min_size=1, max_size=63).map(str.encode)
label = st.one_of(letters, letters, letters, letters, printable,
                  st.binary(min_size=1, max_size=70))
name = st.lists(label, max_size=5)
qtypes = st.one_of(st.sampled_from([1, 2, 5, 6, 12, 15, 16, 28, 33, 64, 65, 255, 0x4141]),
                   st.integers(0, 0xFFFF))


def encode_labels(labels: list[bytes]) -> bytes:
    return b"".join(bytes((len(x) % 256,)) + x for x in labels) + b"\x00"


@st.composite
def opt_records(draw) -> bytes:
    options = b""
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.binary(max_size=12))
        length = len(data) if draw(st.integers(0, 3)) else draw(st.integers(0, 40))
        options += struct.pack("!HH", draw(st.integers(0, 0xFFFF)), length) + data
    owner = b"\x00" if draw(st.integers(0, 9)) else draw(st.sampled_from([b"\xc0\x0c",
                                                                           b"\x01a\x00"]))
    rdlength = len(options) if draw(st.integers(0, 5)) else draw(st.integers(0, 60))
    return owner + struct.pack("!HHIH", draw(st.sampled_from([41, 41, 41, 1])),
                               draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 2**32 - 1)),
                               rdlength) + options


@st.composite
def packets(draw) -> bytes:
    which = draw(st.integers(0, 9))  # mostly the counts of a plain query
    if which < 7:
        counts = (1, 0, 0, draw(st.sampled_from([0, 1])))
    elif which < 9:
        counts = draw(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 2),
                                st.integers(0, 3)))
    else:
        counts = draw(st.tuples(*[st.integers(0, 0xFFFF)] * 4))
    header = struct.pack("!HH", draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)))
    body = encode_labels(draw(name)) + struct.pack("!HH", draw(qtypes),
                                                   draw(st.sampled_from([1, 1, 3, 255])))
    if counts[3]:
        body += draw(opt_records())
    data = header + struct.pack("!HHHH", *counts) + body
    mutation = draw(st.integers(0, 9))
    if mutation == 1:  # cut short anywhere
        data = data[:draw(st.integers(0, len(data)))]
    elif mutation == 2:  # one byte changed
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes((draw(st.integers(0, 255)),)) + data[at + 1:]
    elif mutation == 3:  # a compression pointer in the question, maybe a loop
        data = data[:12] + struct.pack("!H", 0xC000 | draw(st.integers(0, 40))) + data[14:]
    elif mutation == 4:  # trailing garbage
        data += draw(st.binary(max_size=20))
    return data


def dnslib_reading(data: bytes):
    """dnslib's reading of ``data`` in the fast reader's terms, or None if dnslib refuses."""
    try:
        parsed = DNSRecord.parse(data)
    except Exception:
        return None
    if len(parsed.questions) != 1:
        return None
    q = parsed.questions[0]
    text = str(q.qname).lower()
    text = text[:-1] if text.endswith(".") else text
    opts = [rr for rr in parsed.ar if rr.rtype == QTYPE.OPT]
    edns = (bool(opts), opts[0].rclass if opts else 512,
            bool(opts[0].edns_do) if opts else False, opts[0].edns_ver if opts else 0)
    return (parsed.header.id, parsed.header.bitmap, text, q.qtype, q.qclass, *edns)


def fast_reading(question) -> tuple:
    return (question.id, question.flags, question.qname, question.qtype, question.qclass,
            question.edns, question.udp_size, question.do, question.edns_version)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packets())
def test_the_fast_reader_agrees_with_dnslib_on_every_packet(data):
    fast = wire._read_question(data)
    assert read_question(data) == fast  # the remembered reading is the same reading
    if fast is None:
        return  # the server asks dnslib itself
    assert dnslib_reading(data) == fast_reading(fast)
    assert question_from_dnslib(data) == fast  # the slow path makes the very same Question


@settings(max_examples=500, deadline=None)
@given(packets())
def test_parse_query_accepts_exactly_what_dnslib_accepts(data):
    expected = dnslib_reading(data)
    try:
        question = parse_query(data)
    except FormError:
        assert expected is None or len(
            [rr for rr in DNSRecord.parse(data).ar if rr.rtype == QTYPE.OPT]) > 1
        return
    assert fast_reading(question) == expected


@settings(max_examples=300, deadline=None)
@given(st.lists(letters, min_size=1, max_size=4), qtypes, st.booleans(), st.booleans())
def test_queries_from_dnspython_take_the_fast_path(labels, qtype, edns, do):
    qname = b".".join(labels).decode()
    query = dns.message.make_query(qname, qtype, use_edns=0 if edns or do else False,
                                   want_dnssec=do)
    question = read_question(query.to_wire())
    assert question is not None
    assert question.qname == qname.lower() and question.qtype == qtype
    assert question.edns == (edns or do) and question.do == do
    assert question.wire[-4:-2] == struct.pack("!H", qtype)  # the type is not lower-cased


@pytest.mark.parametrize("data", [
    b"",
    b"\x12\x34\x01",  # a header cut short
    bytes.fromhex("123401000001000000000000") + b"\xc0\x0c\x00\x01\x00\x01",  # points at itself
    bytes.fromhex("1234010000010000000000000361626300"),  # question without type and class
    bytes.fromhex("12340100ffff000000000000") + b"\x01a\x00\x00\x01\x00\x01",  # 65535 questions
    bytes.fromhex("123401000000000000000000"),  # no question at all
    bytes.fromhex("123401000001000000000000") + b"\x05ab\x00",  # label runs off the end
])
def test_unreadable_queries_are_form_errors(data):
    with pytest.raises(FormError):
        parse_query(data)


def test_a_form_error_answer_keeps_the_id_and_a_response_is_never_answered():
    data = bytes.fromhex("beef0100ffff000000000000")
    answer = DNSRecord.parse(make_error(data, Rcode.FORMERR))
    assert (answer.header.id, answer.header.rcode, answer.header.qr) == (0xBEEF, 1, 1)
    assert make_error(bytes.fromhex("beef8100ffff000000000000"), Rcode.FORMERR) is None
    assert make_error(b"\xbe\xef", Rcode.FORMERR) is None


def test_a_long_label_the_fast_reader_leaves_to_dnslib():
    data = bytes.fromhex("123401000001000000000000") + b"\x46" + b"a" * 70 + b"\x00\x00\x01\x00\x01"
    assert read_question(data) is None
    question = parse_query(data)
    assert question.qname == "a" * 70
    assert question.wire[0] == 0x46  # a length byte of 70 ("F") is not lower-cased


# --- answers made from bytes ------------------------------------------------------------------

def question_for(qname: str, qtype: str = "A", *, edns: bool = False, do: bool = False,
                 rd: bool = True, qid: int = 7):
    query = dns.message.make_query(qname, qtype, use_edns=0 if edns or do else False,
                                   want_dnssec=do, id=qid)
    if not rd:
        query.flags &= ~0x0100
    data = query.to_wire()
    return parse_query(data), data


def test_finalize_puts_the_clients_id_flags_and_spelling_into_a_base_answer():
    question, data = question_for("WwW.Lib.KG", rd=False, qid=4242)
    base = make_response(question, Rcode.NOERROR, record(QType.A, 60, bytes([192, 0, 2, 1])), 1)
    out = dns.message.from_wire(bytes(finalize(question, data, base, None, True)))
    assert out.id == 4242 and not out.flags & RD and out.flags & QR
    assert str(out.question[0].name) == "WwW.Lib.KG."
    assert [r.to_text() for r in out.answer[0]] == ["192.0.2.1"]
    assert out.edns == -1


def test_finalize_adds_our_opt_record_for_an_edns_client_with_its_do_bit():
    question, data = question_for("lib.kg", edns=True, do=True)
    base = make_response(question, Rcode.NOERROR)
    out = dns.message.from_wire(bytes(finalize(question, data, base, None, True)))
    assert out.edns == 0 and out.payload == 1232 and out.ednsflags & 0x8000
    assert with_opt(base, True)[11] == 1  # ARCOUNT


def test_finalize_truncates_for_a_client_without_edns_and_not_over_tcp():
    question, data = question_for("big.lib.kg", "TXT")
    records = b"".join(record(QType.TXT, 60, b"\xff" + bytes([c]) * 255) for c in b"xyz")
    base = make_response(question, Rcode.NOERROR, records, 3)
    udp = dns.message.from_wire(bytes(finalize(question, data, base, None, True)))
    assert udp.flags & TC and not udp.answer
    tcp = dns.message.from_wire(bytes(finalize(question, data, base, None, False)))
    assert not tcp.flags & TC and len(tcp.answer[0]) == 3


# --- reading upstream answers ---------------------------------------------------------------

def upstream_answer(qname: str, *records: RR, auth=(), rcode: int = 0, opt: bool = True):
    query = DNSRecord.question(qname)
    reply = query.reply()
    reply.header.rcode = rcode
    for rr in records:
        reply.add_answer(rr)
    for rr in auth:
        reply.add_auth(rr)
    if opt:
        reply.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(10, b"12345678")]))
    question, _ = question_for(qname)
    return question, bytes(reply.pack())


def test_scan_finds_ttl_offsets_cname_targets_and_strips_the_opt_record():
    question, data = upstream_answer(
        "www.lib.kg", RR("www.lib.kg", QTYPE.CNAME, ttl=300, rdata=CNAME("cdn.example.net")),
        RR("cdn.example.net", QTYPE.A, ttl=60, rdata=A("192.0.2.9")))
    scan = scan_response(data, question.wire)
    assert scan.names == ("cdn.example.net",) and not scan.negative
    assert scan.ttls == (300, 60)
    assert scan.base[:2] == b"\x00\x00" and scan.base[10:12] == b"\x00\x00"  # ID 0, no OPT
    patched = bytearray(scan.base)
    for offset in scan.ttl_offsets:
        struct.pack_into("!I", patched, offset, 5)
    assert [rr.ttl for rr in DNSRecord.parse(bytes(patched)).rr] == [5, 5]


def test_scan_reads_the_negative_ttl_from_the_soa_as_rfc_2308_says():
    soa = RR("lib.kg", QTYPE.SOA, ttl=900,
             rdata=SOA("ns.lib.kg", "host.lib.kg", (1, 3600, 600, 86400, 120)))
    question, data = upstream_answer("nope.lib.kg", auth=[soa], rcode=3)
    scan = scan_response(data, question.wire)
    assert scan.negative and scan.rcode == 3 and scan.soa_ttl == 120 and scan.ttls == (120,)


def test_scan_refuses_an_answer_to_another_question_and_a_compression_loop():
    question, data = upstream_answer("lib.kg", RR("lib.kg", QTYPE.A, rdata=A("192.0.2.1")))
    other, _ = question_for("bilimland.kz")
    assert scan_response(data, other.wire) is None
    looped = bytearray(data)
    at = 12 + len(question.wire)  # the answer's owner name: make it point at itself
    looped[at:at + 2] = struct.pack("!H", 0xC000 | at)
    assert scan_response(bytes(looped), question.wire) is None
    cname = bytearray(upstream_answer(
        "lib.kg", RR("lib.kg", QTYPE.CNAME, rdata=CNAME("x.lib.kg")), opt=False)[1])
    target = len(cname) - 2  # the CNAME target ends in a pointer; aim it at itself
    cname[target:] = struct.pack("!H", 0xC000 | target)
    assert scan_response(bytes(cname), question.wire) is None


def test_the_query_sent_upstream_has_rd_and_our_opt_record():
    question, _ = question_for("lib.kg", do=True)
    sent = DNSRecord.parse(make_query(question.wire, 99, do=True, cd=True))
    assert sent.header.id == 99 and sent.header.rd and sent.header.cd
    assert sent.ar[0].rclass == 1232 and sent.ar[0].edns_do
