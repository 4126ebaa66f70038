"""The decision engine: ``decide(client_ip, host, url=None, at=None) -> Decision``.

It reads only the current immutable :class:`~policies.snapshot.Snapshot`. Precedence, most
binding first (DESIGN.md): mandatory categories → session mode (closed/focus) → schedule →
no session where one is required → site lists (most specific wins; block beats allow at the
same specificity) → category actions → the group's mode.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Mapping

from sqlalchemy.orm import Session, sessionmaker

from policies.database import read_version
from policies.decision import Action, Decision, Reason
from policies.domain import fast_normalise, is_ip_literal
from policies.lookup import CategoryLookup
from policies.models import GroupKind, GroupMode, SessionMode
from policies.snapshot import GroupRules, Snapshot, compile_snapshot

log = logging.getLogger(__name__)

ALLOW, BLOCK = Action.ALLOW, Action.BLOCK

# The group a client gets when the configured default group is not in the policy: fail closed.
NOWHERE = GroupRules(
    id="(none)", name="no group", kind=GroupKind.GUEST, mode=GroupMode.EDUCATION_ONLY,
    safe_search=True, youtube="strict", session_required=False, downloads=False, schedule=(),
    week=b"", category_actions={}, sites={}, url_sites={}, default_rule="no group",
    schedule_rule="")


class Engine:
    """Holds the current snapshot and answers :meth:`decide`; :meth:`refresh` swaps snapshots."""

    def __init__(self, snapshot: Snapshot,
                 compile: Callable[[], Snapshot] | None = None,
                 version: Callable[[], object] | None = None,
                 compiled_version: object = None) -> None:
        self._snapshot = snapshot
        self._compile = compile
        # Any comparable value: the state version, or (state version, district baseline).
        self._version = version
        self._compiled_version = snapshot.version if compiled_version is None else (
            compiled_version)
        # (epoch minute, weekday, minute of day, zone): schedules need local time, once a minute
        self._local_minute: tuple = (-1, 0, 0, None)
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        # Two threads swap snapshots (the policy watcher and the address watcher): each swap
        # is made under this lock so that neither undoes the other's.
        self._swap = threading.Lock()

    @classmethod
    def from_database(cls, sessions: sessionmaker[Session], *, default_group: str = "guests",
                      categories: CategoryLookup | None = None) -> Engine:
        def compile_now() -> Snapshot:
            with sessions() as db:
                return compile_snapshot(db, default_group=default_group,
                                        extra_categories=categories)

        def version_now() -> int:
            with sessions() as db:
                return read_version(db)

        return cls(compile_now(), compile_now, version_now)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    # --- keeping the snapshot current ---------------------------------------------------

    def refresh(self, *, force: bool = False) -> bool:
        """Recompile if the state version moved (or sessions may have expired); True if swapped.

        A failure keeps the old snapshot: the school never loses filtering because of the
        database.
        """
        if self._compile is None:
            return False
        try:
            current = self._version() if self._version is not None else None
            if current is not None and current == self._compiled_version and not force:
                return False
            snapshot = self._compile()
        except Exception:
            log.exception("could not recompile the policy; keeping version %s",
                          self._snapshot.version)
            return False
        with self._swap:
            addresses = self._snapshot.addresses
            if addresses:
                snapshot = snapshot.with_addresses(addresses)
            self._snapshot = snapshot  # one reference assignment: readers see old or new, whole
            self._compiled_version = current if current is not None else snapshot.version
        return True

    def set_addresses(self, addresses: Mapping[str, str]) -> bool:
        """Use ``addresses`` (IP → MAC, from gateway/identity) to find devices pinned by MAC;
        True if it differed from the map in use (then the client memo starts afresh)."""
        with self._swap:
            if addresses == self._snapshot.addresses:
                return False
            self._snapshot = self._snapshot.with_addresses(dict(addresses))
        return True

    def watch(self, interval: float = 1.0, *, also: Callable[[], object] | None = None) -> None:
        """Poll the state version every ``interval`` seconds in a daemon thread; ``also`` is
        called on each round too (the blocklist index checks whether its file was replaced)."""
        if self._watcher is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.refresh()
                if also is not None:
                    try:
                        also()
                    except Exception:  # the watcher must outlive any hiccup
                        log.exception("periodic reload failed")

        self._watcher = threading.Thread(target=loop, name="kalkan-policy-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()

    # --- deciding -------------------------------------------------------------------------

    def decide(self, client_ip: str, host: str, url: str | None = None,
               at: dt.datetime | None = None) -> Decision:
        """Decide whether ``client_ip`` may reach ``host`` (and ``url``) at ``at`` (now)."""
        snap = self._snapshot
        ctx = snap.client(client_ip)
        room = ctx.room
        room_sessions = snap.sessions.get(room) if room else None
        t = None
        session = None
        if room_sessions:
            t = time.time() if at is None else at.timestamp()
            for s in room_sessions:
                if s.starts <= t < s.ends and (not s.seats or ctx.seat in s.seats):
                    session = s
                    break
        group = snap.groups.get(
            ctx.pinned_group or (session.group if session else None)
            or (snap.room_groups.get(room) if room else None) or snap.default_group,
            NOWHERE)
        domain = fast_normalise(host)
        path = _path_of(url) if url else None
        # The fields every decision carries, in Decision's order after action and reason.
        head = (domain, ctx.ip, group.id, room, ctx.device, session.id if session else None)
        if not domain:
            return Decision(BLOCK, Reason.INVALID_HOST, *head)
        matches = snap.categories.lookup(domain, path)

        # 1. Mandatory categories: regulation 3.3, for students, whatever any rule says.
        if matches and group.kind is GroupKind.STUDENT:
            for m in matches:
                if m.category in snap.mandatory:
                    return Decision(BLOCK, Reason.MANDATORY_CATEGORY, *head, category=m.category,
                                    matched=m.entry, rule=f"mandatory category {m.category} "
                                    f"(regulation 3.3), list {m.source}")

        # 2. The teacher's session: sites allowed at students' requests, then its mode.
        if session is not None and session.allowed and session.mode is not SessionMode.CLOSED:
            hit = _focus_match(session.allowed, domain, path)
            if hit:
                return Decision(ALLOW, Reason.SESSION_MODE, *head, matched=hit,
                                detail="allowed by the teacher for this session",
                                rule=f"session #{session.id} by {session.teacher}: allowed {hit}")
        if session is not None and session.mode is not SessionMode.NORMAL:
            if session.mode is SessionMode.CLOSED:
                return Decision(BLOCK, Reason.SESSION_MODE, *head, detail="the session is closed",
                                rule=f"session #{session.id} by {session.teacher}: closed")
            hit = _focus_match(session.focus, domain, path)
            if hit:
                return Decision(ALLOW, Reason.SESSION_MODE, *head, matched=hit,
                                detail="on the focus list of the session",
                                rule=f"session #{session.id} by {session.teacher}: focus")
            return Decision(BLOCK, Reason.SESSION_MODE, *head, detail="not on the focus list",
                            rule=f"session #{session.id} by {session.teacher}: focus on "
                            f"{', '.join(sorted(session.focus)) or 'nothing'}")

        # 3. Schedule, then 4. the session that students need (regulation 2.9).
        if group.schedule:
            if t is None:
                t = time.time() if at is None else at.timestamp()
            weekday, minute = self._local_time(snap, t)
            if not group.in_schedule(weekday, minute):
                return Decision(BLOCK, Reason.OUTSIDE_SCHEDULE, *head, rule=group.schedule_rule)
        if group.session_required and session is None:
            return Decision(BLOCK, Reason.NO_SESSION, *head,
                            rule=f"group {group.id} is session-bound")

        # 5. Site lists: the most specific entry wins; block beats allow at the same depth.
        site = _site_match(group, domain, path)
        if site is not None:
            return Decision(site.action, Reason.SITE_LIST, *head, matched=site.entry,
                            rule=site.rule, council=snap.decisions.get(site.revision),
                            revision=site.revision)

        # 6. Category actions, at the most specific depth that has one.
        if matches:
            actions = group.category_actions
            best = None
            for m in matches:
                act = actions.get(m.category)
                if act is None:
                    continue
                if best is not None and m.depth < best[0].depth:
                    break
                if best is None or (act[0] is BLOCK and best[1][0] is ALLOW):
                    best = (m, act)
            if best is not None:
                m, (action, revision) = best
                return Decision(action, Reason.CATEGORY, *head, category=m.category,
                                matched=m.entry, rule=f"group {group.id}: {action.value} "
                                f"category {m.category} (list {m.source})",
                                council=snap.decisions.get(revision), revision=revision)

        # 7. Nothing matched: the group's mode decides.
        if group is NOWHERE:
            return Decision(BLOCK, Reason.GROUP_DEFAULT, *head, detail=f"the default group "
                            f"{snap.default_group!r} is not in the policy; blocking everything")
        category = matches[0].category if matches else None
        if group.mode is GroupMode.EDUCATION_ONLY:
            return Decision(BLOCK, Reason.GROUP_DEFAULT, *head, category=category,
                            rule=group.default_rule)
        return Decision(ALLOW, Reason.GROUP_DEFAULT, *head, category=category,
                        rule=group.default_rule)

    def _local_time(self, snap: Snapshot, t: float) -> tuple[int, int]:
        bucket = int(t // 60)
        cached = self._local_minute
        if cached[0] == bucket and cached[3] is snap.timezone:
            return cached[1], cached[2]
        local = dt.datetime.fromtimestamp(t, snap.timezone)
        self._local_minute = (bucket, local.weekday(), local.hour * 60 + local.minute,
                              snap.timezone)
        return local.weekday(), local.hour * 60 + local.minute


def _site_match(group: GroupRules, domain: str, path: str | None):
    sites, urls = group.sites, group.url_sites
    name = domain
    while True:
        if path is not None and urls:
            for prefix, hit in urls.get(name, ()):
                if path.startswith(prefix):
                    return hit
        hit = sites.get(name)
        if hit is not None:
            return hit
        dot = name.find(".")
        if dot < 0:
            return None
        name = name[dot + 1:]


def _focus_match(focus: frozenset[str], domain: str, path: str | None) -> str | None:
    name = domain
    while True:
        if name in focus:
            return name
        if path is not None:
            for entry in focus:
                if "/" in entry and entry.startswith(name + "/") and path.startswith(
                        entry[len(name):]):
                    return entry
        dot = name.find(".")
        if dot < 0:
            return None
        name = name[dot + 1:]


def _path_of(url: str) -> str:
    """The path and query of ``url`` (lists such as UT1's hold entries with queries)."""
    start = url.find("://")
    rest = url[start + 3:] if start >= 0 else url
    slash = rest.find("/")
    if slash < 0:
        query = rest.find("?")
        return "/" if query < 0 else "/" + rest[query:]
    path = rest[slash:]
    cut = path.find("#")
    return path if cut < 0 else path[:cut]


def is_bypass_host(host: str) -> bool:
    """An IP literal where a name is expected: the proxy marks such requests as bypass attempts."""
    return is_ip_literal(host)
