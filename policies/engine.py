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
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from policies.database import read_version
from policies.decision import Action, Decision, Reason
from policies.domain import fast_normalise, is_ip_literal
from policies.lookup import CategoryLookup
from policies.models import GroupKind, GroupMode, SessionMode
from policies.snapshot import ClientContext, GroupRules, SessionInfo, Snapshot, compile_snapshot

log = logging.getLogger(__name__)

ALLOW, BLOCK = Action.ALLOW, Action.BLOCK

# The group a client gets when the configured default group is not in the policy: fail closed.
NOWHERE = GroupRules(
    id="(none)", name="no group", kind=GroupKind.GUEST, mode=GroupMode.EDUCATION_ONLY,
    safe_search=True, youtube="strict", session_required=False, downloads=False, schedule=(),
    category_actions={}, sites={}, url_sites={})


class Engine:
    """Holds the current snapshot and answers :meth:`decide`; :meth:`refresh` swaps snapshots."""

    def __init__(self, snapshot: Snapshot,
                 compile: Callable[[], Snapshot] | None = None,
                 version: Callable[[], int] | None = None) -> None:
        self._snapshot = snapshot
        self._compile = compile
        self._version = version
        # (epoch minute, weekday, minute of day, zone): schedules need local time, once a minute
        self._local_minute: tuple = (-1, 0, 0, None)
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()

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
            unchanged = self._version is not None and self._version() == self._snapshot.version
            if unchanged and not force:
                return False
            snapshot = self._compile()
        except Exception:
            log.exception("could not recompile the policy; keeping version %s",
                          self._snapshot.version)
            return False
        self._snapshot = snapshot  # one reference assignment: readers see old or new, whole
        return True

    def watch(self, interval: float = 1.0) -> None:
        """Poll the state version every ``interval`` seconds in a daemon thread."""
        if self._watcher is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.refresh()

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
        t = time.time() if at is None else at.timestamp()
        session = _active_session(snap, ctx, t)
        group = snap.groups.get(
            ctx.pinned_group or (session.group if session else None)
            or (snap.room_groups.get(ctx.room) if ctx.room else None) or snap.default_group,
            NOWHERE)
        domain = fast_normalise(host)
        path = _path_of(url) if url else None
        base = {"host": domain, "client": ctx.ip, "group": group.id, "room": ctx.room,
                "device": ctx.device, "session": session.id if session else None}
        if not domain:
            return Decision(BLOCK, Reason.INVALID_HOST, **base)
        matches = snap.categories.lookup(domain, path)

        # 1. Mandatory categories: regulation 3.3, for students, whatever any rule says.
        if group.kind is GroupKind.STUDENT and matches:
            for m in matches:
                if m.category in snap.mandatory:
                    return Decision(BLOCK, Reason.MANDATORY_CATEGORY, category=m.category,
                                    matched=m.entry, rule=f"mandatory category {m.category} "
                                    f"(regulation 3.3), list {m.source}", **base)

        # 2. The teacher's session mode.
        if session is not None and session.mode is not SessionMode.NORMAL:
            if session.mode is SessionMode.CLOSED:
                return Decision(BLOCK, Reason.SESSION_MODE, detail="the session is closed",
                                rule=f"session #{session.id} by {session.teacher}: closed", **base)
            hit = _focus_match(session.focus, domain, path)
            if hit:
                return Decision(ALLOW, Reason.SESSION_MODE, matched=hit,
                                detail="on the focus list of the session",
                                rule=f"session #{session.id} by {session.teacher}: focus", **base)
            return Decision(BLOCK, Reason.SESSION_MODE, detail="not on the focus list",
                            rule=f"session #{session.id} by {session.teacher}: focus on "
                            f"{', '.join(sorted(session.focus)) or 'nothing'}", **base)

        # 3. Schedule, then 4. the session that students need (regulation 2.9).
        if group.schedule:
            weekday, minute = self._local_time(snap, t)
            if not group.in_schedule(weekday, minute):
                return Decision(BLOCK, Reason.OUTSIDE_SCHEDULE, rule=f"schedule of group "
                                f"{group.id}: {_schedule_text(group)}", **base)
        if group.session_required and session is None:
            return Decision(BLOCK, Reason.NO_SESSION, rule=f"group {group.id} is session-bound",
                            **base)

        # 5. Site lists: the most specific entry wins; block beats allow at the same depth.
        site = _site_match(group, domain, path)
        if site is not None:
            return Decision(site.action, Reason.SITE_LIST, matched=site.entry,
                            rule=f"site list ({site.scope}): {site.action.value} {site.entry}",
                            council=snap.decisions.get(site.revision), revision=site.revision,
                            **base)

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
                return Decision(action, Reason.CATEGORY, category=m.category, matched=m.entry,
                                rule=f"group {group.id}: {action.value} category {m.category} "
                                f"(list {m.source})", council=snap.decisions.get(revision),
                                revision=revision, **base)

        # 7. Nothing matched: the group's mode decides.
        if group is NOWHERE:
            return Decision(BLOCK, Reason.GROUP_DEFAULT, detail=f"the default group "
                            f"{snap.default_group!r} is not in the policy; blocking everything",
                            **base)
        category = matches[0].category if matches else None
        if group.mode is GroupMode.EDUCATION_ONLY:
            return Decision(BLOCK, Reason.GROUP_DEFAULT, category=category,
                            rule=f"group {group.id}: education only", **base)
        return Decision(ALLOW, Reason.GROUP_DEFAULT, category=category,
                        rule=f"group {group.id}: allow unless blocked", **base)

    def _local_time(self, snap: Snapshot, t: float) -> tuple[int, int]:
        bucket = int(t // 60)
        cached = self._local_minute
        if cached[0] == bucket and cached[3] is snap.timezone:
            return cached[1], cached[2]
        local = dt.datetime.fromtimestamp(t, snap.timezone)
        self._local_minute = (bucket, local.weekday(), local.hour * 60 + local.minute,
                              snap.timezone)
        return local.weekday(), local.hour * 60 + local.minute


def _active_session(snap: Snapshot, ctx: ClientContext, t: float) -> SessionInfo | None:
    if ctx.room is None:
        return None
    for s in snap.sessions.get(ctx.room, ()):
        if s.starts <= t < s.ends and (not s.seats or ctx.seat in s.seats):
            return s
    return None


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
    start = url.find("://")
    rest = url[start + 3:] if start >= 0 else url
    slash = rest.find("/")
    if slash < 0:
        return "/"
    path = rest[slash:]
    cut = path.find("?")
    return path if cut < 0 else path[:cut]


def _schedule_text(group: GroupRules) -> str:
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    parts = []
    for wd, start, end in group.schedule:
        names = ",".join(days[d] for d in sorted(wd))
        parts.append(f"{names} {start // 60:02d}:{start % 60:02d}–{end // 60:02d}:{end % 60:02d}")
    return "; ".join(parts)


def is_bypass_host(host: str) -> bool:
    """An IP literal where a name is expected: the proxy marks such requests as bypass attempts."""
    return is_ip_literal(host)
