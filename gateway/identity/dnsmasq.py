"""dnsmasq's lease file (``/var/lib/misc/dnsmasq.leases``).

IPv4 lines: ``expiry mac ip hostname client-id``; a ``duid SERVER-DUID`` line starts the
DHCPv6 part, whose lines are ``expiry iaid ip hostname client-duid`` (a MAC only when the
DUID carries one). ``*`` means no hostname; expiry 0 means the lease never ends.
"""

from __future__ import annotations

from gateway.identity.leases import Lease, LeaseFile, canonical_ip, mac_of_duid, normalise_mac

DEFAULT_PATH = "/var/lib/misc/dnsmasq.leases"


def parse_dnsmasq_leases(text: str, now: float) -> LeaseFile:
    """The unexpired leases in ``text``; a line that does not read is skipped and counted."""
    out = LeaseFile()
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "duid":
            continue  # the server's own DUID: no client here
        if len(fields) < 4 or not fields[0].isdigit():
            out.skipped += 1
            continue
        expires = int(fields[0]) or None
        ip = canonical_ip(fields[2])
        mac = normalise_mac(fields[1])
        if mac is None and ip is not None and ":" in ip and len(fields) >= 5:
            mac = mac_of_duid(fields[4])  # a DHCPv6 line: field 1 is the IAID
            if mac is None:
                continue  # a good line, but nothing in it names a device
        if mac is None or ip is None:
            out.skipped += 1
            continue
        if expires is not None and expires < now:
            continue
        hostname = None if fields[3] == "*" else fields[3]
        out.leases.append(Lease(mac, ip, hostname, expires))
    return out
