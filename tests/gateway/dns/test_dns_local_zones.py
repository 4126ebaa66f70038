"""Reverse lookups of private and special addresses are answered by the gateway (RFC 6303),
never sent upstream: NXDOMAIN with the zone's SOA, or the gateway's own name for its own
addresses."""

from __future__ import annotations

import ipaddress
import socket

from dns_harness import ask, events_for, rcode, records, wait_until

pytest_plugins = ["dns_fixtures"]

PRIVATE = ["10.1.2.3", "192.168.5.5", "172.16.0.1", "172.31.255.9", "169.254.1.1", "127.0.0.9",
           "100.64.0.1", "192.0.2.7", "fd12:3456::1", "fe80::1"]


def reverse(address: str) -> str:
    return ipaddress.ip_address(address).reverse_pointer


def test_private_reverse_names_get_nxdomain_here_and_never_go_upstream(server, upstream):
    for address in PRIVATE:
        answer = ask(server, reverse(address), "PTR")
        assert rcode(answer) == "NXDOMAIN", address
        soa = answer.authority[0]
        assert soa.rdtype == 6 and str(soa[0].mname) == "localhost."  # RFC 6303's SOA
        assert answer.flags & 0x0400  # AA: the gateway is the authority for these
    assert not [q for q in upstream.queries if q[0].endswith(".arpa")]
    event = events_for(server, reverse("10.1.2.3"))[0]
    assert (event.action, event.reason) == ("allow", "local_zone")


def test_public_reverse_names_still_go_upstream(server, upstream):
    ask(server, reverse("172.32.0.1"), "PTR")  # just outside 172.16.0.0/12
    ask(server, reverse("2001:4860::8888"), "PTR")
    assert wait_until(lambda: len([q for q in upstream.queries if q[0].endswith(".arpa")]) == 2)


def test_the_gateways_own_addresses_have_its_name(start_server, upstream):
    server = start_server(dns={"block_answer": "blockpage"},
                          proxy={"block_page_address": "192.168.1.1"})
    own = ask(server, reverse("192.168.1.1"), "PTR")
    assert records(own) == [f"PTR {socket.gethostname().lower()}."]
    assert records(ask(server, reverse("127.0.0.1"), "PTR")) == ["PTR localhost."]
    # Above an own name there is something (NODATA), beside it nothing (NXDOMAIN).
    assert rcode(ask(server, "1.168.192.in-addr.arpa", "PTR")) == "NOERROR"
    assert rcode(ask(server, reverse("192.168.1.2"), "PTR")) == "NXDOMAIN"
    assert records(ask(server, "168.192.in-addr.arpa", "SOA"))[0].startswith("SOA localhost.")
    assert not [q for q in upstream.queries if q[0].endswith(".arpa")]
