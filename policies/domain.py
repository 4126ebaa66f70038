"""DNS names as the engine compares them: A-labels, lower case, no trailing dot."""

from __future__ import annotations

import ipaddress

from policies.errors import KalkanError


class InvalidDomain(KalkanError):
    """Text that is not a usable host name."""


def normalise_domain(text: str) -> str:
    """Return ``text`` as an A-label name: ``Мектеп.KG.`` → ``xn--e1aaogsq.kg`` (no trailing dot).

    IPv4 and IPv6 literals are returned in their canonical text form so that lists may hold them.
    Raises :class:`InvalidDomain` for empty labels, over-long names and characters DNS forbids.
    """
    name = text.strip().rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if not name:
        raise InvalidDomain(f"{text!r} is not a host name: it is empty")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise InvalidDomain(f"{text!r} is not a valid internationalised name: {exc}") from None
    if ":" in name or name[-1].isdigit():
        try:
            return str(ipaddress.ip_address(name))
        except ValueError:
            if ":" in name:
                raise InvalidDomain(f"{text!r} is neither a host name nor an IP address") from None
    if len(name) > 253:
        raise InvalidDomain(f"{text!r} is longer than the 253 characters DNS allows")
    for label in name.split("."):
        if not label:
            raise InvalidDomain(f"{text!r} has an empty label (two dots in a row?)")
        if len(label) > 63:
            raise InvalidDomain(f"{text!r} has a label longer than 63 characters")
        if not all(c.isalnum() or c in "-_" for c in label):
            raise InvalidDomain(f"{text!r} holds a character that host names cannot have")
    return name


def fast_normalise(host: str) -> str:
    """The hot-path form of :func:`normalise_domain` for names that are already plain ASCII.

    Falls back to the full function only for the rare non-ASCII or bracketed name.
    """
    if host.isascii() and not host.startswith("["):
        return host.lower().rstrip(".")
    try:
        return normalise_domain(host)
    except InvalidDomain:
        return host.lower().rstrip(".")


def suffixes(domain: str) -> list[str]:
    """The name and each parent, most specific first: ``a.lib.kg`` → ``a.lib.kg, lib.kg, kg``.

    The notion of subdomain includes equality, so the name itself comes first.
    """
    out = [domain]
    start = domain.find(".")
    while start != -1:
        domain = domain[start + 1:]
        out.append(domain)
        start = domain.find(".")
    return out


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def split_site(entry: str) -> tuple[str, str | None]:
    """Split a site-list entry into (domain, path): ``lib.kg/books`` → (``lib.kg``, ``/books``).

    Entries may carry a scheme, which is ignored; a bare domain has no path.
    """
    text = entry.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    host, sep, path = text.partition("/")
    if host.startswith("["):  # [fd00::1]:8080: the address is inside the brackets
        host = host[:host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:  # lib.kg:8080
        host = host.split(":", 1)[0]
    domain = normalise_domain(host)
    return domain, ("/" + path if sep and path else None)
