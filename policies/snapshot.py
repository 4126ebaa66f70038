"""An immutable, compiled picture of the policy and the open sessions, made for fast lookups.

The engine never reads the database while deciding: it reads one :class:`Snapshot`, and a new
one replaces it as a whole (a single reference assignment) when the state version changes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.database import read_version, utcnow
from policies.decision import Action, CouncilDecision
from policies.document import DAY_NAMES, parse_days
from policies.lookup import URL_DEPTH, CategoryLookup, InMemoryCategoryIndex
from policies.models import (
    Category,
    CategorySite,
    Device,
    Group,
    GroupCategoryAction,
    GroupKind,
    GroupMode,
    InternetSession,
    Network,
    PolicyRevision,
    Room,
    School,
    SchoolClass,
    SessionMode,
    SiteRule,
)


@dataclass(frozen=True, slots=True)
class SiteHit:
    action: Action
    entry: str  # domain or domain/path as the policy writes it
    scope: str  # "group middle" or "all groups"
    revision: int | None
    depth: int
    rule: str  # in words, made once here rather than on every decision


@dataclass(frozen=True, slots=True)
class GroupRules:
    id: str
    name: str
    kind: GroupKind
    mode: GroupMode
    safe_search: bool
    youtube: str
    session_required: bool
    downloads: bool
    schedule: tuple[tuple[frozenset[int], int, int], ...]  # (weekdays, from, to) in minutes
    week: bytes  # 7 × 1440 flags, 1 where the schedule allows that minute of the week
    category_actions: Mapping[str, tuple[Action, int | None]]  # category → action, revision
    sites: Mapping[str, SiteHit]  # domain → hit, group and global lists merged
    url_sites: Mapping[str, tuple[tuple[str, SiteHit], ...]]  # domain → (path prefix, hit)
    default_rule: str  # "group middle: allow unless blocked"
    schedule_rule: str  # "schedule of group middle: mon,tue,wed,thu,fri 08:00–17:00"

    @property
    def is_student(self) -> bool:
        return self.kind is GroupKind.STUDENT

    def in_schedule(self, weekday: int, minute: int) -> bool:
        """True when the group may be online; no schedule means no time limit."""
        return not self.schedule or self.week[weekday * 1440 + minute] == 1


def schedule_text(schedule: tuple[tuple[frozenset[int], int, int], ...]) -> str:
    days = DAY_NAMES
    parts = []
    for wd, start, end in schedule:
        names = ",".join(days[d] for d in sorted(wd))
        parts.append(f"{names} {start // 60:02d}:{start % 60:02d}–{end // 60:02d}:{end % 60:02d}")
    return "; ".join(parts)


def week_of(schedule: tuple[tuple[frozenset[int], int, int], ...]) -> bytes:
    week = bytearray(7 * 1440)
    for days, start, end in schedule:
        for day in days:
            week[day * 1440 + start:day * 1440 + end] = b"\x01" * (end - start)
    return bytes(week)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    id: int
    room: str
    teacher: str
    class_id: str | None
    group: str | None  # the class's group: its policy applies to the room during the session
    seats: frozenset[str]
    starts: float  # epoch seconds
    ends: float
    mode: SessionMode
    focus: frozenset[str]  # domains (and domain/path entries) a focus session allows
    allowed: frozenset[str] = frozenset()  # sites the teacher allowed at students' requests
    downloads: bool = False  # the teacher allowed program and media downloads (reg. 3.3)


@dataclass(frozen=True, slots=True)
class ClientContext:
    ip: str
    device: str | None
    seat: str | None
    room: str | None
    pinned_group: str | None


@dataclass(frozen=True)
class Snapshot:
    version: int
    revision: int | None
    timezone: ZoneInfo
    default_group: str
    groups: Mapping[str, GroupRules]
    room_groups: Mapping[str, str]  # room → default group
    networks_v4: tuple[tuple[int, Mapping[int, str]], ...]  # (prefix, {masked address: room})
    networks_v6: tuple[tuple[int, Mapping[int, str]], ...]
    devices_by_ip: Mapping[str, tuple[str, str | None, str | None, str | None]]
    devices_by_mac: Mapping[str, tuple[str, str | None, str | None, str | None]]
    sessions: Mapping[str, tuple[SessionInfo, ...]]  # room → its open and coming sessions
    categories: CategoryLookup
    mandatory: frozenset[str]
    decisions: Mapping[int, CouncilDecision]  # revision → the council decision it implements
    compiled_at: dt.datetime = field(default_factory=utcnow)
    # IP → MAC from the router's leases and neighbour table (gateway/identity), put in by
    # Engine.set_addresses: not from the database, so a recompile carries it over.
    addresses: Mapping[str, str] = field(default_factory=dict, repr=False)
    _clients: dict[str, ClientContext] = field(default_factory=dict, repr=False)

    def with_addresses(self, addresses: Mapping[str, str]) -> Snapshot:
        """This policy with another IP → MAC map (and a fresh memo, since clients move)."""
        return dataclasses.replace(self, addresses=addresses, _clients={})

    def client(self, ip: str) -> ClientContext:
        """Device, room and pinned group of ``ip``; memoised, since the snapshot never changes."""
        ctx = self._clients.get(ip)
        if ctx is None:
            ctx = self._resolve_client(ip)
            if len(self._clients) < 65536:
                self._clients[ip] = ctx
        return ctx

    def _resolve_client(self, ip: str) -> ClientContext:
        try:
            addr = ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            return ClientContext(ip, None, None, None, None)
        if addr.version == 6 and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        key = str(addr)
        # The MAC first: a device pinned by MAC keeps its place whatever address it uses now
        # (and an address pinned to another device, if the MAC took it over, follows the MAC).
        mac = self.addresses.get(key) if self.devices_by_mac else None
        device = (self.devices_by_mac.get(mac) if mac else None) or self.devices_by_ip.get(key)
        if device:
            dev_id, room, seat, group = device
            return ClientContext(key, dev_id, seat, room or self._room_of(addr), group)
        return ClientContext(key, None, None, self._room_of(addr), None)

    def room_of(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        """The room whose network holds ``addr`` (whatever device is there), or None."""
        return self._room_of(addr)

    def _room_of(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        value = int(addr)
        bits = 32 if addr.version == 4 else 128
        table = self.networks_v4 if addr.version == 4 else self.networks_v6
        for prefix, rooms in table:  # longest prefix first
            room = rooms.get(value >> (bits - prefix) << (bits - prefix))
            if room:
                return room
        return None


def compile_snapshot(db: Session, *, default_group: str = "guests",
                     extra_categories: CategoryLookup | None = None,
                     now: dt.datetime | None = None) -> Snapshot:
    """Read the policy and the sessions that are open or still to come into a :class:`Snapshot`.

    ``extra_categories`` is the blocklist index; the policy's own category lists always apply.
    """
    version = read_version(db)
    school = db.scalar(select(School).limit(1))
    tz = ZoneInfo(school.timezone if school else "UTC")
    decisions = {r.id: CouncilDecision(r.protocol, r.decision_date.isoformat())
                 for r in db.scalars(select(PolicyRevision))}
    latest = max(decisions) if decisions else None

    # Plain rows, not ORM objects: ten thousand list entries load five times faster.
    sites_by_group: dict[str | None, list[Any]] = {}
    for rule in db.execute(select(SiteRule.group_id, SiteRule.domain, SiteRule.path,
                                  SiteRule.action, SiteRule.origin_revision_id)
                           .order_by(SiteRule.id)):
        sites_by_group.setdefault(rule.group_id, []).append(rule)
    actions: dict[str, dict[str, tuple[Action, int | None]]] = {}
    for a in db.execute(select(GroupCategoryAction.group_id, GroupCategoryAction.category_id,
                               GroupCategoryAction.action,
                               GroupCategoryAction.origin_revision_id)):
        actions.setdefault(a.group_id, {})[a.category_id] = (Action(a.action), a.origin_revision_id)

    groups = {}
    for g in db.scalars(select(Group)):
        sites, url_sites = _merge_sites(g.id, sites_by_group.get(None, []),
                                        sites_by_group.get(g.id, []))
        schedule = tuple((parse_days(w.days), _minutes(w.start), _minutes(w.end))
                         for w in g.schedule)
        groups[g.id] = GroupRules(
            id=g.id, name=g.name, kind=GroupKind(g.kind), mode=GroupMode(g.mode),
            safe_search=g.safe_search, youtube=g.youtube_restricted,
            session_required=g.session_required, downloads=g.downloads_allowed,
            schedule=schedule, week=week_of(schedule),
            schedule_rule=f"schedule of group {g.id}: {schedule_text(schedule)}",
            category_actions=actions.get(g.id, {}), sites=sites, url_sites=url_sites,
            default_rule=f"group {g.id}: " + ("education only" if g.mode == GroupMode.EDUCATION_ONLY
                                              else "allow unless blocked"))

    v4: dict[int, dict[int, str]] = {}
    v6: dict[int, dict[int, str]] = {}
    for net in db.scalars(select(Network)):
        n = ipaddress.ip_network(net.cidr)
        (v4 if n.version == 4 else v6).setdefault(n.prefixlen, {})[int(n.network_address)] = (
            net.room_id)
    devices: dict[str, tuple[str, str | None, str | None, str | None]] = {}
    devices_by_mac: dict[str, tuple[str, str | None, str | None, str | None]] = {}
    for d in db.scalars(select(Device)):
        if d.ip:
            devices[d.ip] = (d.id, d.room_id, d.seat, d.group_id)
        if d.mac:
            devices_by_mac[d.mac] = (d.id, d.room_id, d.seat, d.group_id)

    class_groups = dict(db.execute(select(SchoolClass.id, SchoolClass.group_id)).all())
    now = now or utcnow()
    sessions: dict[str, list[SessionInfo]] = {}
    for s in db.scalars(select(InternetSession).where(
            InternetSession.closed_at.is_(None), InternetSession.ends_at > now)):
        sessions.setdefault(s.room_id, []).append(SessionInfo(
            id=s.id, room=s.room_id, teacher=s.teacher.username, class_id=s.class_id,
            group=class_groups.get(s.class_id) if s.class_id else None,
            seats=frozenset(str(x) for x in s.seats or ()),
            starts=_epoch(s.starts_at), ends=_epoch(s.ends_at), mode=SessionMode(s.mode),
            focus=frozenset(s.focus_sites or ()),
            allowed=frozenset(s.allowed_sites or ()), downloads=bool(s.allow_downloads)))

    own = InMemoryCategoryIndex(
        (row.category_id, row.domain + (row.path or ""), "policy")
        for row in db.execute(select(CategorySite.category_id, CategorySite.domain,
                                     CategorySite.path)))
    lookup: CategoryLookup = own if extra_categories is None else _Chained(own, extra_categories)
    mandatory = frozenset(db.scalars(select(Category.id).where(Category.mandatory)))
    from policies.categories import MANDATORY_FOR_STUDENTS

    return Snapshot(
        version=version, revision=latest, timezone=tz, default_group=default_group,
        groups=groups,
        room_groups=dict(db.execute(select(Room.id, Room.default_group_id)).all()),
        networks_v4=tuple(sorted(v4.items(), reverse=True)),
        networks_v6=tuple(sorted(v6.items(), reverse=True)),
        devices_by_ip=devices, devices_by_mac=devices_by_mac,
        sessions={room: tuple(sorted(s, key=lambda x: x.starts)) for room, s in sessions.items()},
        categories=lookup, mandatory=mandatory | MANDATORY_FOR_STUDENTS, decisions=decisions)


def _merge_sites(group_id: str, global_rules: list[Any], group_rules: list[Any]
                 ) -> tuple[dict[str, SiteHit], dict[str, tuple[tuple[str, SiteHit], ...]]]:
    """One dictionary per group; at the same domain, block beats allow whoever wrote it."""
    sites: dict[str, SiteHit] = {}
    urls: dict[str, list[tuple[str, SiteHit]]] = {}
    actions = {a.value: a for a in Action}
    for rules, scope in ((global_rules, "all groups"), (group_rules, f"group {group_id}")):
        for _group, domain, path, action_text, revision in rules:
            action = actions[action_text]
            depth = domain.count(".") + 1
            entry = domain + path if path else domain
            rule = f"site list ({scope}): {action_text} {entry}"
            if path:
                hit = SiteHit(action, entry, scope, revision, URL_DEPTH + depth, rule)
                urls.setdefault(domain, []).append((path, hit))
                continue
            old = sites.get(domain)
            if old is None or (old.action is Action.ALLOW and action is Action.BLOCK):
                sites[domain] = SiteHit(action, entry, scope, revision, depth, rule)
    # Longest path first; at the same path, block first.
    ordered = {d: tuple(sorted(v, key=lambda ph: (-len(ph[0]), ph[1].action is Action.ALLOW)))
               for d, v in urls.items()}
    return sites, ordered


def chain_lookups(first: CategoryLookup, second: CategoryLookup) -> CategoryLookup:
    """Both as one lookup (a district baseline's lists, the school's, the blocklist index)."""
    return _Chained(first, second)


class _Chained:
    """The policy's own category lists first, then the blocklist index."""

    def __init__(self, first: CategoryLookup, second: CategoryLookup) -> None:
        self.first, self.second = first, second

    def lookup(self, domain: str, path: str | None = None) -> tuple:
        # Two plain calls: this runs for every query, and a generator here cost more than both.
        first = self.first.lookup(domain, path)
        second = self.second.lookup(domain, path)
        if not first or not second:  # the usual case: no list or one list knows the name
            return first or second
        return tuple(sorted(first + second, key=lambda m: -m.depth))


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _epoch(naive_utc: dt.datetime) -> float:
    return naive_utc.replace(tzinfo=dt.UTC).timestamp()
