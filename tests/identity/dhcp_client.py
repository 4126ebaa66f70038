"""A DHCPv4 client just big enough for the namespace test (no dhclient/udhcpc here).

Run inside the PC's namespace: ``python dhcp_client.py IFACE MAC HOSTNAME [--request IP]
[--release IP SERVER]``. It asks with the broadcast flag set, so the server's OFFER and ACK
come back as broadcasts to a socket bound to port 68 on the interface; it prints the leased
address (or "released"). Each wait is bounded (3 s).
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys

MAGIC = bytes([99, 130, 83, 99])
DISCOVER, OFFER, REQUEST, ACK, NAK, RELEASE = 1, 2, 3, 5, 6, 7
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


def packet(kind: int, xid: int, mac: bytes, hostname: str, *, ciaddr: str = "0.0.0.0",
           requested: str | None = None, server: str | None = None) -> bytes:
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                       socket.inet_aton(ciaddr), b"\0" * 4, b"\0" * 4, b"\0" * 4,
                       mac + b"\0" * 10, b"\0" * 64, b"\0" * 128)
    options = bytes([53, 1, kind]) + bytes([12, len(hostname)]) + hostname.encode()
    if requested:
        options += bytes([50, 4]) + socket.inet_aton(requested)
    if server:
        options += bytes([54, 4]) + socket.inet_aton(server)
    return head + MAGIC + options + bytes([255])


def parse(data: bytes) -> tuple[int, str, dict[int, bytes]]:
    """(xid, yiaddr, options) of a server's reply."""
    xid = struct.unpack_from("!I", data, 4)[0]
    yiaddr = socket.inet_ntoa(data[16:20])
    options: dict[int, bytes] = {}
    i = 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        code, length = data[i], data[i + 1]
        options[code] = data[i + 2:i + 2 + length]
        i += 2 + length
    return xid, yiaddr, options


def wait_for(sock: socket.socket, xid: int, kinds: set[int]) -> tuple[str, dict[int, bytes]]:
    while True:
        data, _ = sock.recvfrom(2048)  # the socket's timeout bounds the wait
        if len(data) < 240 or data[236:240] != MAGIC:
            continue
        got_xid, yiaddr, options = parse(data)
        if got_xid == xid and options.get(53, b"\0")[0] in kinds:
            return yiaddr, options


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("iface")
    args.add_argument("mac")
    args.add_argument("hostname")
    args.add_argument("--request")
    args.add_argument("--release", nargs=2, metavar=("IP", "SERVER"))
    opts = args.parse_args()
    mac = bytes.fromhex(opts.mac.replace(":", ""))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, opts.iface.encode())
    sock.bind(("0.0.0.0", 68))
    sock.settimeout(3)
    xid = int.from_bytes(os.urandom(4), "big")
    if opts.release:
        ip, server = opts.release
        sock.sendto(packet(RELEASE, xid, mac, opts.hostname, ciaddr=ip, server=server),
                    (server, 67))
        print("released")
        return
    sock.sendto(packet(DISCOVER, xid, mac, opts.hostname, requested=opts.request),
                ("255.255.255.255", 67))
    offered, options = wait_for(sock, xid, {OFFER})
    server = socket.inet_ntoa(options[54])
    sock.sendto(packet(REQUEST, xid, mac, opts.hostname, requested=offered, server=server),
                ("255.255.255.255", 67))
    leased, options = wait_for(sock, xid, {ACK, NAK})
    if options[53][0] == NAK:
        sys.exit(f"the server refused {offered} (NAK)")
    print(leased)


if __name__ == "__main__":
    main()
