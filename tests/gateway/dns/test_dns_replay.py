"""The replay memo: a client that repeats a packet within a second gets the chain's answer
again, with its own ID, and each repeat is logged and counted like any query; a policy
change ends the replay at once."""

from __future__ import annotations

import socket

import dns.message
from dns_harness import (
    STUDENT,
    events_for,
    import_revision,
    loopback_policy,
    port_of,
    records,
    wait_until,
)

pytest_plugins = ["dns_fixtures"]


def _exchange(server, message: dns.message.Message) -> dns.message.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(message.to_wire(), (STUDENT, port_of(server)))
        return dns.message.from_wire(sock.recv(1500))


def test_repeats_get_their_own_id_and_each_one_is_logged(server, upstream):
    _exchange(server, dns.message.make_query("lib.kg", "A", id=1))  # upstream, then cached
    hits = server.counters.cache_hits
    for qid in range(2, 22):  # the same packet but for its ID, twenty times in a row
        answer = _exchange(server, dns.message.make_query("lib.kg", "A", id=qid))
        assert answer.id == qid
        assert records(answer) == ["A 192.0.2.11"]
    assert server.counters.cache_hits == hits + 20
    events = events_for(server, "lib.kg")
    assert len(events) == 21 and {e.action for e in events} == {"allow"}
    assert all(e.latency_ms is not None and e.latency_ms >= 0 for e in events)
    assert len({e.time for e in events}) == 21  # each repeat its own time, not a copy
    assert [q for q in upstream.queries if q[0] == "lib.kg"] == [("lib.kg", "A", "udp")]


def test_the_spelling_the_client_used_comes_back(server):
    _exchange(server, dns.message.make_query("lib.kg", "A", id=1))
    for _ in range(3):
        answer = _exchange(server, dns.message.make_query("LiB.kG", "A", id=7))
        assert answer.question[0].name.to_text() == "LiB.kG."
        assert records(answer) == ["A 192.0.2.11"]


def test_a_policy_change_ends_the_replay_at_once(start_server, school):
    server = start_server(watch=0.1)
    query = dns.message.make_query("lib.kg", "A", id=5)
    _exchange(server, query)
    assert records(_exchange(server, query)) == ["A 192.0.2.11"]  # now in the memo
    data = loopback_policy()
    data["sites"]["block"].append("lib.kg")
    import_revision(school, data, protocol="9")
    # The next packet after the swap is answered by the chain, blocked, in the same second
    # or not: the memo is emptied when the snapshot changes.
    version = server.engine.snapshot.version
    assert wait_until(lambda: server.engine.snapshot.version != version, 2.0)
    assert records(_exchange(server, query)) == [f"A {STUDENT}"]
