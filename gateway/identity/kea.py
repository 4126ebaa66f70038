"""ISC Kea's memfile lease files (``/var/lib/kea/kea-leases4.csv``, ``kea-leases6.csv``).

A CSV file with a header line; Kea appends a row on every change of a lease and compacts the
file now and then, so the last row for an address wins. A row whose ``expire`` has passed,
whose ``state`` is not 0 (default) or whose ``valid_lifetime`` is 0 (released) holds nothing.
The column order differs between versions, so columns are found by their header names.
"""

from __future__ import annotations

import csv
import io

from gateway.identity.leases import Lease, LeaseFile, canonical_ip, mac_of_duid, normalise_mac

DEFAULT_PATHS = ("/var/lib/kea/kea-leases4.csv", "/var/lib/kea/kea-leases6.csv")
PREFIX_DELEGATION = "2"  # lease_type of a delegated prefix: a router downstream, not a host


def parse_kea_leases(text: str, now: float) -> LeaseFile:
    """The live leases of a leases4 or leases6 memfile; bad rows are skipped and counted."""
    out = LeaseFile()
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or "address" not in header or "expire" not in header:
        out.skipped += 1 if text.strip() else 0
        return out
    col = {name.strip(): i for i, name in enumerate(header)}
    latest: dict[str, Lease | None] = {}
    for row in rows:
        if not row:
            continue
        try:
            ip = canonical_ip(row[col["address"]])
            expires = float(row[col["expire"]])
            state = row[col["state"]].strip() if "state" in col else "0"
            lifetime = row[col["valid_lifetime"]].strip() if "valid_lifetime" in col else "1"
            lease_type = row[col["lease_type"]].strip() if "lease_type" in col else "0"
            mac = normalise_mac(row[col["hwaddr"]]) if "hwaddr" in col else None
            if mac is None and "duid" in col:
                mac = mac_of_duid(row[col["duid"]])
            hostname = row[col["hostname"]].strip() if "hostname" in col else ""
        except (IndexError, ValueError):
            out.skipped += 1
            continue
        if ip is None:
            out.skipped += 1
            continue
        if lease_type == PREFIX_DELEGATION:
            continue
        if mac is None or state != "0" or lifetime == "0" or expires < now:
            latest[ip] = None  # released, expired or declined: whatever came before is over
            continue
        # Kea writes a comma in a hostname as "&#x2c".
        latest[ip] = Lease(mac, ip, hostname.replace("&#x2c", ",") or None, expires)
    out.leases.extend(lease for lease in latest.values() if lease is not None)
    return out
