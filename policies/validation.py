"""Checks a policy document against the regulations and itself, before anything is applied.

Every refusal is a :class:`PolicyError` with the file, the line and what to do; nothing is
written until the whole document passes, so the running policy never changes on bad input.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from policies.categories import MANDATORY_FOR_STUDENTS
from policies.document import AllowBlock, PolicyDocument, normalise_sites
from policies.domain import InvalidDomain, normalise_domain
from policies.errors import (
    MandatoryCategoryAllowed,
    OverlappingNetworks,
    PolicyError,
    UnknownReference,
)
from policies.models import GroupKind
from policies.yamlfile import Located

MAC_CHARS = set("0123456789abcdef:")


def validate_document(doc: PolicyDocument, located: Located) -> PolicyDocument:
    """Return ``doc`` with every site normalised, or raise the first problem found."""
    file = located.file

    def fail(cls: type[PolicyError], message: str, path: tuple, hint: str) -> None:
        raise cls(message, file=file, line=located.line_of(path), hint=hint)

    _unique((c.id for c in doc.categories), ("categories",), "category", located)
    _unique((g.id for g in doc.groups), ("groups",), "group", located)
    _unique((r.id for r in doc.rooms), ("rooms",), "room", located)
    _unique((d.id for d in doc.devices), ("devices",), "device", located)

    categories = {c.id: c for c in doc.categories}
    for i, cat in enumerate(doc.categories):
        if cat.id in MANDATORY_FOR_STUDENTS and not cat.mandatory:
            fail(PolicyError, f"category {cat.id!r} must stay mandatory: regulation 3.3 bars it "
                 "for students", ("categories", i, "mandatory"), "set `mandatory: true`")
    mandatory = {c.id for c in doc.categories if c.mandatory} | MANDATORY_FOR_STUDENTS
    groups = {g.id for g in doc.groups}

    new_groups = []
    for gi, group in enumerate(doc.groups):
        for action in ("allow", "block"):
            for ci, cid in enumerate(getattr(group.categories, action)):
                if cid not in categories:
                    fail(UnknownReference, f"group {group.id!r} names unknown category {cid!r}",
                         ("groups", gi, "categories", action, ci),
                         f"use one of: {', '.join(sorted(categories))}, or add it under "
                         "`categories:`")
        both = set(group.categories.allow) & set(group.categories.block)
        if both:
            cid = sorted(both)[0]
            fail(PolicyError, f"group {group.id!r} both allows and blocks category {cid!r}",
                 ("groups", gi, "categories", "block", group.categories.block.index(cid)),
                 "keep it in one of the two lists")
        if group.kind is GroupKind.STUDENT:
            for ci, cid in enumerate(group.categories.allow):
                if cid in mandatory:
                    name = categories[cid].names.get("en", cid) if cid in categories else cid
                    why = ("regulation 3.3 bars pornography, violence, terrorism, extremism "
                           "and hatred for students" if cid in MANDATORY_FOR_STUDENTS else
                           "this policy marks it `mandatory: true`, like the regulation 3.3 "
                           "categories")
                    fail(MandatoryCategoryAllowed,
                         f"student group {group.id!r} may not allow the mandatory category "
                         f"{cid!r} ({name}): {why}",
                         ("groups", gi, "categories", "allow", ci),
                         "remove it from `allow:`; mandatory categories are always blocked "
                         "for students")
        for si, window in enumerate(group.schedule):
            if window.start >= window.end:
                fail(PolicyError, f"schedule window {window.start}–{window.end} of group "
                     f"{group.id!r} ends before it starts", ("groups", gi, "schedule", si),
                     "write the earlier time in `from:`; split windows that cross midnight")
        sites = _checked_sites(group.sites.allow, group.sites.block,
                               ("groups", gi, "sites"), located)
        # A category named twice is one rule (and one row: the table keeps them unique).
        actions = AllowBlock(allow=_dedupe(group.categories.allow),
                             block=_dedupe(group.categories.block))
        new_groups.append(group.model_copy(update={"sites": sites, "categories": actions}))

    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str, tuple]] = []
    new_rooms = []
    for ri, room in enumerate(doc.rooms):
        if room.default_group not in groups:
            fail(UnknownReference, f"room {room.id!r} has unknown default group "
                 f"{room.default_group!r}", ("rooms", ri, "default_group"),
                 f"use one of: {', '.join(sorted(groups))}")
        cidrs = []
        for ni, text in enumerate(room.networks):
            path = ("rooms", ri, "networks", ni)
            try:
                net = ipaddress.ip_network(str(text), strict=False)
            except ValueError:
                fail(PolicyError, f"{text!r} is not a network", path,
                     "write it as an address and prefix, e.g. 10.10.1.0/24")
            if str(net) in cidrs:
                continue  # written twice for the same room: one network
            for other, owner, other_path in networks:
                # Overlaps inside one room are harmless: the addresses still have one room.
                if owner != room.id and net.version == other.version and net.overlaps(other):
                    fail(OverlappingNetworks,
                         f"network {net} of room {room.id!r} overlaps {other} of room "
                         f"{owner!r} (line {located.line_of(other_path)})", path,
                         "each address may belong to one room only; split the networks")
            networks.append((net, room.id, path))
            cidrs.append(str(net))
        new_rooms.append(room.model_copy(update={"networks": cidrs}))

    rooms = {r.id for r in doc.rooms}
    new_devices = []
    seen_ips: dict[str, str] = {}
    seen_macs: dict[str, str] = {}
    for di, device in enumerate(doc.devices):
        path = ("devices", di)
        if not device.ip and not device.mac:
            fail(PolicyError, f"device {device.id!r} has neither ip nor mac", path,
                 "give its IP address or its MAC address")
        ip = mac = None
        if device.ip:
            try:
                ip = str(ipaddress.ip_address(device.ip))
            except ValueError:
                fail(PolicyError, f"{device.ip!r} is not an IP address", (*path, "ip"),
                     "write it like 10.10.1.15 or fd00::15")
            if ip in seen_ips:
                fail(PolicyError, f"device {device.id!r} has the same IP as {seen_ips[ip]!r}",
                     (*path, "ip"), "an address belongs to one device")
            seen_ips[ip] = device.id
        if device.mac:
            mac = device.mac.lower().replace("-", ":")
            if len(mac) != 17 or not set(mac) <= MAC_CHARS:
                fail(PolicyError, f"{device.mac!r} is not a MAC address", (*path, "mac"),
                     "write it like 52:54:00:12:34:56")
            if mac in seen_macs:
                fail(PolicyError, f"device {device.id!r} has the same MAC as "
                     f"{seen_macs[mac]!r}", (*path, "mac"), "an address belongs to one device")
            seen_macs[mac] = device.id
        if device.room and device.room not in rooms:
            fail(UnknownReference, f"device {device.id!r} is in unknown room {device.room!r}",
                 (*path, "room"), f"use one of: {', '.join(sorted(rooms))}")
        if device.group and device.group not in groups:
            fail(UnknownReference, f"device {device.id!r} is in unknown group {device.group!r}",
                 (*path, "group"), f"use one of: {', '.join(sorted(groups))}")
        new_devices.append(device.model_copy(update={"ip": ip, "mac": mac}))

    sites = _checked_sites(doc.sites.allow, doc.sites.block, ("sites",), located)
    category_sites = {}
    for cid, entries in doc.category_sites.items():
        if cid not in categories:
            fail(UnknownReference, f"`category_sites` names unknown category {cid!r}",
                 ("category_sites", cid), "add it under `categories:` or fix the name")
        category_sites[cid] = _dedupe(normalise_sites(entries, ("category_sites", cid), located))

    return doc.model_copy(update={
        "groups": new_groups, "rooms": new_rooms, "devices": new_devices, "sites": sites,
        "category_sites": category_sites,
    })


def _checked_sites(allow: list[str], block: list[str], path: tuple,
                   located: Located) -> AllowBlock:
    allow_n = normalise_sites(allow, (*path, "allow"), located)
    block_n = normalise_sites(block, (*path, "block"), located)
    both = set(allow_n) & set(block_n)
    if both:
        entry = sorted(both)[0]
        index = block_n.index(entry)  # before de-duplication: the index is the line's
        raise PolicyError(f"{entry!r} is both allowed and blocked in the same list",
                          file=located.file, line=located.line_of((*path, "block", index)),
                          hint="keep it in one of the two lists")
    return AllowBlock(allow=_dedupe(allow_n), block=_dedupe(block_n))


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _unique(ids: Iterable[str], path: tuple, what: str, located: Located) -> None:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            raise PolicyError(f"{what} id {ident!r} is used twice", file=located.file,
                              line=located.line_of((*path, i)), hint="ids must be unique")
        seen.add(ident)


def check_host(text: str) -> str:
    """Normalise a host typed on the command line, with a clear error."""
    try:
        return normalise_domain(text)
    except InvalidDomain as exc:
        raise PolicyError(str(exc), hint="type a host name such as lib.kg") from None
