"""systemd-networkd's DHCP server leases.

networkd (systemd 255 and later) saves the leases its ``[DHCPServer]`` hands out as one JSON
document per interface, under ``/var/lib/systemd/network/dhcp-server-lease/`` (older: under
``/run/systemd/netif/dhcp-server-lease/``): ``{"Leases": [{"Address": [10,10,1,101],
"HardwareAddress": [82,84,…], "HardwareAddressLength": 6, "ClientId": [1,82,84,…],
"Hostname": "pc1", "ExpirationRealtimeUSec": …}, …]}``. The files in
``/run/systemd/netif/leases/`` are the router's *own* leases as a DHCP client (its uplink),
which name no classroom device: a ``KEY=VALUE`` file there is read as no leases, not an error.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.identity.leases import Lease, LeaseFile, canonical_ip, normalise_mac

DEFAULT_DIRS = ("/var/lib/systemd/network/dhcp-server-lease",
                "/run/systemd/netif/dhcp-server-lease")
ETHERNET = 1


def parse_networkd_leases(text: str, now: float) -> LeaseFile:
    out = LeaseFile()
    stripped = text.lstrip()
    if not stripped or not stripped.startswith("{"):
        return out  # a client lease (KEY=VALUE) or nothing: no classroom device in it
    try:
        document = json.loads(text)
        entries = document["Leases"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        out.skipped += 1  # a file caught half written: read again when its mtime moves
        return out
    for entry in entries:
        lease = _lease_of(entry, now)
        if lease is False:
            out.skipped += 1
        elif lease is not None:
            out.leases.append(lease)
    return out


def _lease_of(entry: Any, now: float) -> Lease | bool | None:
    """A lease, None for an expired one, False for an entry that does not read."""
    try:
        ip = canonical_ip(".".join(str(int(b)) for b in entry["Address"]))
        mac = None
        length = int(entry.get("HardwareAddressLength", 6))
        if entry.get("HardwareAddress") and length == 6:
            mac = _mac_of_bytes(entry["HardwareAddress"][:6])
        client_id = entry.get("ClientId") or []
        if mac is None and len(client_id) == 7 and int(client_id[0]) == ETHERNET:
            mac = _mac_of_bytes(client_id[1:])
        expires_usec = entry.get("ExpirationRealtimeUSec")
        expires = int(expires_usec) / 1e6 if expires_usec is not None else None
        hostname = entry.get("Hostname")
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    if ip is None or mac is None:
        return False
    if expires is not None and expires < now:
        return None
    return Lease(mac, ip, hostname if isinstance(hostname, str) else None, expires)


def _mac_of_bytes(values: list[Any]) -> str | None:
    return normalise_mac(":".join(f"{int(b) & 0xFF:02x}" for b in values))
