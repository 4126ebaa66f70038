"""The lease readers and the neighbour table, on the text the real programs write.

A half-written or garbled file must never stop the gateway knowing the other devices: every
bad line is skipped and counted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.identity.dnsmasq import parse_dnsmasq_leases
from gateway.identity.kea import parse_kea_leases
from gateway.identity.leases import Lease, mac_of_duid, normalise_mac
from gateway.identity.neighbours import parse_neighbours
from gateway.identity.networkd import parse_networkd_leases
from gateway.identity.sources import LeaseReader

NOW = 1_790_000_000.0
LATER = int(NOW) + 3600
PC1, PC2 = "52:54:00:10:01:01", "52:54:00:10:01:02"


@pytest.mark.parametrize(("text", "expected"), [
    (f"{LATER} 52:54:00:10:01:01 10.10.1.101 pc1 01:52:54:00:10:01:01\n",
     [Lease(PC1, "10.10.1.101", "pc1", LATER)]),
    ("0 52:54:00:10:01:01 10.10.1.101 * *\n", [Lease(PC1, "10.10.1.101", None, None)]),
    (f"{int(NOW) - 5} 52:54:00:10:01:01 10.10.1.101 pc1 *\n", []),  # expired
    # The DHCPv6 part: the client's DUID-LL carries its MAC.
    (f"duid 00:01:00:01:2c:4b:1a:10:02:00:00:00:00:01\n"
     f"{LATER} 1234 fd00:10:10:1::65 pc1 00:03:00:01:52:54:00:10:01:01\n",
     [Lease(PC1, "fd00:10:10:1::65", "pc1", LATER)]),
], ids=["ipv4", "infinite", "expired", "dhcpv6"])
def test_dnsmasq_leases(text: str, expected: list[Lease]) -> None:
    parsed = parse_dnsmasq_leases(text, NOW)
    assert parsed.leases == expected and parsed.skipped == 0


def test_dnsmasq_garbled_lines_are_skipped_and_counted() -> None:
    text = (f"{LATER} 52:54:00:10:01:01 10.10.1.101 pc1 *\n"
            "garbage\x00\x00 here\n"
            f"{LATER} not-a-mac 10.10.1.7 x *\n"
            f"{LATER} 52:54:00:10:01:02 10.10.1.999 pc2 *\n"
            f"{LATER} 52:54:00:10:01:02 10.10.1.102 pc2 *\n"
            f"{LATER} 52:54:00:10:01:0")  # cut off in the middle of a write
    parsed = parse_dnsmasq_leases(text, NOW)
    assert [(x.mac, x.ip) for x in parsed.leases] == [(PC1, "10.10.1.101"),
                                                       (PC2, "10.10.1.102")]
    assert parsed.skipped == 4


KEA4 = ("address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,"
        "state,user_context,pool_id\n"
        f"10.10.1.101,52:54:00:10:01:01,01:52:54:00:10:01:01,3600,{LATER},1,0,0,pc1,0,,0\n"
        f"10.10.1.102,52:54:00:10:01:02,,3600,{LATER},1,0,0,pc&#x2ctwo,0,,0\n"
        # the first PC moves: its old address is released (valid_lifetime 0) …
        f"10.10.1.101,52:54:00:10:01:01,,0,{int(NOW)},1,0,0,pc1,0,,0\n"
        # … and a new one leased; a declined address (state 1) holds nobody
        f"10.10.1.120,52:54:00:10:01:01,,3600,{LATER},1,0,0,pc1,0,,0\n"
        f"10.10.1.130,52:54:00:10:01:09,,3600,{LATER},1,0,0,,1,,0\n"
        "10.10.1.140,broken\n")
KEA6 = ("address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,"
        "fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source,pool_id\n"
        f"fd00:10:10:1::65,00:03:00:01:52:54:00:10:01:01,3600,{LATER},1,1800,0,1,128,0,0,pc1,"
        ",0,,1,0,0\n"
        f"fd00:10:10:1::66,00:02:00:00:ab:11:01,3600,{LATER},1,1800,0,1,128,0,0,,"
        "52:54:00:10:01:02,0,,1,0,0\n"
        f"fd00:10:10:2::,00:03:00:01:52:54:00:10:01:03,3600,{LATER},1,1800,2,1,64,0,0,,,0,,1,0,0\n")


def test_kea_leases4_last_row_wins_and_released_leases_end() -> None:
    parsed = parse_kea_leases(KEA4, NOW)
    assert sorted((x.ip, x.mac, x.hostname) for x in parsed.leases) == [
        ("10.10.1.102", PC2, "pc,two"), ("10.10.1.120", PC1, "pc1")]
    assert parsed.skipped == 1


def test_kea_leases6_mac_from_duid_or_hwaddr_and_no_delegated_prefixes() -> None:
    parsed = parse_kea_leases(KEA6, NOW)
    assert sorted((x.ip, x.mac) for x in parsed.leases) == [
        ("fd00:10:10:1::65", PC1), ("fd00:10:10:1::66", PC2)]


def test_kea_without_a_header_reads_as_one_bad_line() -> None:
    assert parse_kea_leases("10.10.1.5,52:54:00:10:01:01\n", NOW).skipped == 1
    assert parse_kea_leases("", NOW).skipped == 0


def _networkd(leases: list[dict]) -> str:
    return json.dumps({"BootID": "0" * 32, "Address": [10, 10, 1, 1], "PrefixLength": 24,
                       "Leases": leases})


def test_networkd_server_leases() -> None:
    mac = [0x52, 0x54, 0, 0x10, 1, 1]
    text = _networkd([
        {"ClientId": [1, *mac], "Address": [10, 10, 1, 101], "Hostname": "pc1",
         "HardwareAddressType": 1, "HardwareAddressLength": 6,
         "HardwareAddress": mac + [0] * 10, "ExpirationRealtimeUSec": LATER * 1_000_000},
        # an older systemd: no HardwareAddress, the client id says the MAC
        {"ClientId": [1, 0x52, 0x54, 0, 0x10, 1, 2], "Address": [10, 10, 1, 102],
         "ExpirationRealtimeUSec": LATER * 1_000_000},
        {"ClientId": [1, *mac], "Address": [10, 10, 1, 103],
         "ExpirationRealtimeUSec": int(NOW - 1) * 1_000_000},  # expired
        {"Address": "nonsense"},
    ])
    parsed = parse_networkd_leases(text, NOW)
    assert [(x.ip, x.mac, x.hostname) for x in parsed.leases] == [
        ("10.10.1.101", PC1, "pc1"), ("10.10.1.102", PC2, None)]
    assert parsed.skipped == 1
    # The router's own client lease (KEY=VALUE) names no classroom device; half a JSON file
    # is one bad read.
    assert parse_networkd_leases("# This is private data.\nADDRESS=192.0.2.5\n", NOW).leases == []
    assert parse_networkd_leases(text[: len(text) // 2], NOW).skipped == 1


def test_neighbour_table() -> None:
    text = json.dumps([
        {"dst": "10.10.1.101", "dev": "lan0", "lladdr": PC1, "state": ["REACHABLE"]},
        {"dst": "fd00:10:10:1:a1b2:c3d4:e5f6:1", "dev": "lan0", "lladdr": PC1,
         "state": ["STALE"]},
        {"dst": "fe80::5054:ff:fe10:102", "dev": "lan0", "lladdr": PC2, "router": None,
         "state": ["DELAY"]},
        {"dst": "10.10.1.250", "dev": "lan0", "state": ["FAILED"]},
        {"dst": "10.10.1.251", "dev": "lan0", "lladdr": "zz", "state": ["STALE"]},
        "junk",
    ])
    table = parse_neighbours(text)
    assert table.macs == {"10.10.1.101": PC1, "fd00:10:10:1:a1b2:c3d4:e5f6:1": PC1,
                          "fe80::5054:ff:fe10:102": PC2}
    assert table.skipped == 2
    assert parse_neighbours("[{\"dst\": ").skipped == 1


def test_macs_and_duids() -> None:
    assert normalise_mac("52-54-00-10-01-01") == PC1
    assert normalise_mac("525400100101") == PC1
    assert normalise_mac("52:54:00:10:01") is None
    assert normalise_mac("00:00:00:00:00:00") is None
    assert mac_of_duid("00:01:00:01:2c:4b:1a:10:52:54:00:10:01:01") == PC1
    assert mac_of_duid("00:02:00:00:ab:11:01") is None


def test_reader_rereads_a_file_only_when_it_changed(tmp_path: Path) -> None:
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text(f"{LATER} {PC1} 10.10.1.101 pc1 *\n")
    neighbours = json.dumps([{"dst": "fd00:10:10:1::abcd", "lladdr": PC1, "state": ["STALE"]},
                             {"dst": "10.10.1.101", "lladdr": PC2, "state": ["REACHABLE"]}])
    reader = LeaseReader((("dnsmasq", str(leases)),),
                         read_neighbour_table=lambda: parse_neighbours(neighbours))
    book = reader.read(NOW)
    # The neighbour table wins where the two disagree: it is what the link shows now.
    assert book.macs == {"10.10.1.101": PC2, "fd00:10:10:1::abcd": PC1}
    first = reader._cache[str(leases)][1]
    assert reader.read(NOW)  # unchanged file: the parsed copy is reused
    assert reader._cache[str(leases)][1] is first

    leases.write_text(f"{LATER} {PC1} 10.10.1.120 pc1 *\nbad line\n")
    os.utime(leases, ns=(0, os.stat(leases).st_mtime_ns + 1_000_000))
    reader.neighbours = False
    book = reader.read(NOW)
    assert book.macs == {"10.10.1.120": PC1} and book.skipped == 1
    leases.unlink()
    assert reader.read(NOW).macs == {} and not reader._cache
