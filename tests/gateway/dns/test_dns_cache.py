"""The answer cache, seen from a client: TTLs count down and are clamped, negative answers are
kept as RFC 2308 says, popular names are fetched again before they expire, the size is bounded,
and one upstream query serves every client that asked at the same time."""

from __future__ import annotations

import threading
import time

from dns_harness import ask, rcode, records, ttls

pytest_plugins = ["dns_fixtures"]


def upstream_asks(upstream, name: str) -> int:
    return sum(1 for q in upstream.queries if q[0] == name)


def test_ttls_count_down_in_the_cache(server, upstream):
    assert ttls(ask(server, "lib.kg")) == [300]
    time.sleep(1.1)
    assert ttls(ask(server, "lib.kg"))[0] in (298, 299)
    assert upstream_asks(upstream, "lib.kg") == 1


def test_ttls_are_clamped_to_min_and_max(start_server, upstream):
    server = start_server(dns={"min_ttl": 60, "max_ttl": 120})
    assert ttls(ask(server, "short.lib.kg")) == [60]  # 1 s upstream, raised to 60
    assert ttls(ask(server, "lib.kg")) == [120]  # 300 s upstream, lowered to 120
    time.sleep(1.2)
    assert ttls(ask(server, "short.lib.kg"))[0] in (58, 59)  # still cached: min_ttl
    assert upstream_asks(upstream, "short.lib.kg") == 1


def test_nxdomain_is_cached_for_the_soa_minimum(server, upstream):
    first = ask(server, "nope.lib.kg")
    assert rcode(first) == "NXDOMAIN"
    assert first.authority[0].ttl == 60  # min(SOA TTL 300, SOA MINIMUM 60)
    second = ask(server, "nope.lib.kg")
    assert rcode(second) == "NXDOMAIN" and server.counters.cache_hits == 1
    assert upstream_asks(upstream, "nope.lib.kg") == 1


def test_nodata_is_cached_too(server, upstream):
    assert records(ask(server, "bilimland.kz", "MX")) == []
    assert records(ask(server, "bilimland.kz", "MX")) == []
    assert upstream_asks(upstream, "bilimland.kz") == 1


def test_a_negative_answer_without_an_soa_is_not_cached(server, upstream):
    upstream.negative_soa = False
    assert rcode(ask(server, "gone.lib.kg")) == "NXDOMAIN"
    assert rcode(ask(server, "gone.lib.kg")) == "NXDOMAIN"
    assert upstream_asks(upstream, "gone.lib.kg") == 2


def test_a_popular_name_is_fetched_again_before_it_expires(server, upstream):
    upstream.add("pre.lib.kg. 2 IN A 192.0.2.40")
    for _ in range(3):
        ask(server, "pre.lib.kg")  # popular: three asks
    time.sleep(1.85)  # past 90 % of the 2-second TTL
    ask(server, "pre.lib.kg")
    assert server.counters.prefetches == 1
    time.sleep(0.5)  # the original would have expired by now
    assert upstream_asks(upstream, "pre.lib.kg") == 2
    hits = server.counters.cache_hits
    assert records(ask(server, "pre.lib.kg")) == ["A 192.0.2.40"]
    assert server.counters.cache_hits == hits + 1


def test_the_cache_holds_at_most_cache_size_answers(start_server, upstream):
    server = start_server(dns={"cache_size": 3})
    names = ["lib.kg", "bilimland.kz", "www.bilimland.kz", "slow.lib.kg", "tc.lib.kg"]
    for name in names:
        ask(server, name)
    assert len(server.chain.cache) == 3
    ask(server, "lib.kg")  # the least recently used was forgotten
    assert upstream_asks(upstream, "lib.kg") == 2


def test_cache_size_zero_turns_the_cache_off(start_server, upstream):
    server = start_server(dns={"cache_size": 0})
    ask(server, "lib.kg")
    ask(server, "lib.kg")
    assert upstream_asks(upstream, "lib.kg") == 2 and len(server.chain.cache) == 0


def test_dnssec_ok_answers_are_kept_apart(server, upstream):
    ask(server, "lib.kg")
    ask(server, "lib.kg", want_dnssec=True)
    ask(server, "lib.kg", want_dnssec=True)
    assert upstream_asks(upstream, "lib.kg") == 2


def test_clients_asking_at_once_share_one_upstream_query(server, upstream):
    upstream.delay = 0.3
    answers = []

    def one() -> None:
        answers.append(records(ask(server, "slow.lib.kg")))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [["A 192.0.2.13"]] * 8
    assert upstream_asks(upstream, "slow.lib.kg") == 1


def test_blocked_and_rewritten_answers_stay_out_of_the_shared_cache(server):
    ask(server, "pornhub.com")
    ask(server, "google.kg")
    cached = {key.split(b"\x00")[0] for key in server.chain.cache._entries}
    assert b"\x07pornhub\x03com" not in cached and b"\x06google\x02kg" not in cached
    assert b"\x0fforcesafesearch\x06google\x03com" in cached  # the target is an upstream answer
