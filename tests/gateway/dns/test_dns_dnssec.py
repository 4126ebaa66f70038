"""DNSSEC passes through: a client that sets DO gets the upstream's signatures and AD bit as
they came, fresh or from the cache; a client that does not gets neither. kalkan validates
nothing itself (the upstream does, or the client)."""

from __future__ import annotations

import dns.flags
from dns_harness import ask, has_flag, records

pytest_plugins = ["dns_fixtures"]

SIGNATURE = "A 13 3 300 20300101000000 20200101000000 12345 lib.kg. c2lnbmF0dXJlLWJ5dGVz"
SIGNED = ["signed.lib.kg. 300 IN A 192.0.2.50", f"signed.lib.kg. 300 IN RRSIG {SIGNATURE}"]


def test_a_client_that_asks_for_dnssec_gets_the_signatures_untouched(server, upstream):
    upstream.add(*SIGNED)
    for _ in range(3):  # from the upstream, from the cache, and replayed
        answer = ask(server, "signed.lib.kg", want_dnssec=True)
        assert records(answer, "A") == ["A 192.0.2.50"]
        rrsig = records(answer, "RRSIG")
        assert len(rrsig) == 1
        # The signature's own fields, its original TTL included, are as the upstream sent them.
        assert rrsig[0].split()[1:4] == ["A", "13", "3"] and rrsig[0].split()[4] == "300"
        assert rrsig[0].endswith("c2lnbmF0dXJlLWJ5dGVz")
        assert has_flag(answer, "AD")
        assert answer.ednsflags & dns.flags.DO
    assert [q for q in upstream.queries if q[0] == "signed.lib.kg"] == [
        ("signed.lib.kg", "A", "udp")]


def test_a_client_that_does_not_ask_for_dnssec_gets_no_signatures(server, upstream):
    upstream.add(*SIGNED)
    ask(server, "signed.lib.kg", want_dnssec=True)
    plain = ask(server, "signed.lib.kg")
    assert records(plain) == ["A 192.0.2.50"]
    assert not has_flag(plain, "AD")
    assert not plain.ednsflags & dns.flags.DO
