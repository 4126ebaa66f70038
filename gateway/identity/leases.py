"""What every lease reader returns: the address a MAC holds, and how much of the file was bad.

Readers are pure functions of a file's text, one module per format (``dnsmasq``, ``kea``,
``networkd``), so they are tested table-driven on text; a line they cannot read is skipped and
counted, never raised: a half-written lease file must not stop the gateway knowing the rest.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

_MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$")


@dataclass(frozen=True, slots=True)
class Lease:
    """``mac`` holds ``ip`` until ``expires`` (epoch seconds; None: no end given)."""

    mac: str  # lower case, colon separated: 52:54:00:10:01:01
    ip: str  # canonical text (ipaddress)
    hostname: str | None = None
    expires: float | None = None


@dataclass(slots=True)
class LeaseFile:
    """The leases read from one file, and the number of lines skipped as unreadable."""

    leases: list[Lease] = field(default_factory=list)
    skipped: int = 0


def normalise_mac(text: str) -> str | None:
    """``52-54-00-10-01-01`` or ``525400100101`` → ``52:54:00:10:01:01``; None if not a MAC
    (or the all-zero address, which is no device)."""
    text = text.strip().lower()
    if not _MAC.match(text):
        return None
    digits = text.replace(":", "").replace("-", "")
    if digits == "000000000000":
        return None
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def canonical_ip(text: str) -> str | None:
    """The canonical text of an IP address, or None if ``text`` is not one."""
    try:
        return str(ipaddress.ip_address(text.strip().split("%", 1)[0]))
    except ValueError:
        return None


def mac_of_duid(duid: str) -> str | None:
    """The link-layer address inside a DHCPv6 DUID-LLT or DUID-LL on Ethernet, if any.

    ``00:01:00:01:<time 4 bytes>:<mac>`` (LLT) or ``00:03:00:01:<mac>`` (LL); other DUIDs
    (enterprise, UUID) carry no MAC, and the neighbour table has to tell.
    """
    digits = re.sub(r"[^0-9a-f]", "", duid.lower())
    if digits.startswith("00010001") and len(digits) == 8 + 8 + 12:
        return normalise_mac(digits[16:])
    if digits.startswith("00030001") and len(digits) == 8 + 12:
        return normalise_mac(digits[8:])
    return None
