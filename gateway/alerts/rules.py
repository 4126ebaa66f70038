"""The detection rules: stored access events in, alert updates out. No database here.

Events are grouped into **attempts**: the requests of one client for one host less than
``episode_seconds`` apart are one attempt (a browser asks for A, AAAA and HTTPS records and
opens several connections for one page). An attempt counts when a person is behind it:

- it includes an HTTP or TLS request (a connection, not only a look-up), or
- the client asked for the host again in ``dns_repeats`` separate attempts within the window
  (a DNS-only look-up that is never followed up is a prefetch or a background look-up);
- ads, telemetry and prefetches never count; a third-party resource of an allowed page
  counts only in a mandatory category and when asked for again in another attempt.

Counted attempts feed the rules, per subject (the student where consent is recorded, else
the device, else the client address), over a sliding window of ``window_minutes``:

- ``repeated_attempts``: ≥ ``attempts`` attempts in mandatory or serious categories → one
  alert per category present (high for mandatory, medium for serious);
- ``many_sites``: ≥ ``distinct_sites`` distinct sites blocked by a category or site list
  in other categories → one alert, category ``various`` (low);
- ``bypass``: one bypass attempt (VPN/proxy, DoH, IP literal, SNI mismatch) → high;
- ``search_terms``: a search for a listed term → medium.

An alert is one per subject, category and session (or school day when no session is open)
and grows with each further attempt; after ``escalate_after`` attempts its severity rises.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from gateway.alerts.models import RuleId, Severity
from gateway.events.models import Flag, Noise
from policies.categories import MANDATORY_FOR_STUDENTS
from policies.decision import Reason

VARIOUS = "various"  # the category of a many_sites alert
BYPASS = "bypass"
SEARCH = "search_terms"
# Reasons for which a block says something about what the student chose to open. A block
# because no session is open, outside the schedule, in a focus session or by the
# education-only default says more about the policy than about the student.
CHOSEN_REASONS = frozenset({Reason.CATEGORY.value, Reason.SITE_LIST.value,
                            Reason.MANDATORY_CATEGORY.value, Reason.BYPASS_ATTEMPT.value})
IGNORED_NOISE = frozenset({Noise.ADS, Noise.TELEMETRY, Noise.PREFETCH})
_THIRD_PARTY = Noise.THIRD_PARTY
_BYPASS_ATTEMPT = Reason.BYPASS_ATTEMPT.value  # a plain string: compared once per event
_SEARCH_TERM = Flag.SEARCH_TERM


class StoredEvent(NamedTuple):
    """The columns of access_events the rules read; ``time`` in epoch seconds."""

    id: int
    time: float
    channel: str
    client: str
    host: str
    action: str
    reason: str
    category: str | None
    group_id: str | None
    room_id: str | None
    device_id: str | None
    session_id: int | None
    class_id: str | None
    student_id: int | None
    bypass: bool
    noise: str | None
    referrer: str | None
    flag: str | None


@dataclass(frozen=True, slots=True)
class RuleSettings:
    window_seconds: float = 600.0
    attempts: int = 3
    mandatory: frozenset[str] = MANDATORY_FOR_STUDENTS
    serious: frozenset[str] = frozenset({"drugs", "gambling", "hacking", "proxy_vpn", "doh",
                                         "dating", "warez"})
    distinct_sites: int = 5
    bypass: bool = True
    episode_seconds: float = 2.0
    dns_repeats: int = 2
    escalate_after: int = 10
    timezone: str = "UTC"

    @classmethod
    def from_config(cls, alerts: Any, *, mandatory: Iterable[str] | None = None,
                    timezone: str = "UTC") -> RuleSettings:
        return cls(window_seconds=alerts.window_minutes * 60.0, attempts=alerts.attempts,
                   mandatory=frozenset(mandatory or MANDATORY_FOR_STUDENTS),
                   serious=frozenset(alerts.serious_categories),
                   distinct_sites=alerts.distinct_sites, bypass=alerts.bypass,
                   episode_seconds=alerts.episode_seconds, dns_repeats=alerts.dns_repeats,
                   escalate_after=alerts.escalate_after, timezone=timezone)

    def base_severity(self, rule: str, category: str) -> Severity:
        if rule == RuleId.BYPASS or category in self.mandatory:
            return Severity.HIGH
        if rule == RuleId.MANY_SITES:
            return Severity.LOW
        return Severity.MEDIUM

    def severity(self, rule: str, category: str, attempts: int) -> Severity:
        """The base severity, one step higher from ``escalate_after`` attempts on."""
        base = self.base_severity(rule, category)
        if attempts >= self.escalate_after and base is not Severity.HIGH:
            return Severity.HIGH if base is Severity.MEDIUM else Severity.MEDIUM
        return base


@dataclass
class AlertUpdate:
    """Create the alert ``key`` or add to it: ``new_attempts`` more attempts, these events."""

    key: str
    rule: str
    category: str
    new_attempts: int
    evidence: list[StoredEvent]
    subject: StoredEvent  # the latest event: its client, device, student, class, room, session


MAX_EVIDENCE = 50  # events kept as evidence per attempt: a flood of retries adds nothing
MAX_LANE = 500  # attempts remembered per subject and lane: far above any threshold


@dataclass
class _Episode:
    start: float
    last: float
    events: list[StoredEvent]
    connection: bool
    third_party: bool
    counted: bool = False
    bypass: bool = False
    key: str | None = None  # the alert it belongs to, once counted

    def add(self, e: StoredEvent) -> None:
        if len(self.events) < MAX_EVIDENCE:
            self.events.append(e)
        time = e.time
        if time < self.start:
            self.start = time
        if time > self.last:
            self.last = time
        if not self.connection and e.channel != "dns":
            self.connection = True
        if self.third_party and e.noise != _THIRD_PARTY:
            self.third_party = False
        if not self.bypass and (e.bypass or e.reason == _BYPASS_ATTEMPT):
            self.bypass = True


def _is_bypass(e: StoredEvent) -> bool:
    return e.bypass or e.reason == _BYPASS_ATTEMPT


@dataclass
class _Subject:
    # (time, category, host, episode) of counted attempts, in arrival order
    serious: deque[tuple[float, str, str, _Episode]] = field(default_factory=deque)
    other: deque[tuple[float, str, str, _Episode]] = field(default_factory=deque)
    sites: dict[str, float] = field(default_factory=dict)  # other lane: site → last attempt


class Detector:
    def __init__(self, settings: RuleSettings, *, staff_groups: Iterable[str] = ()) -> None:
        self.settings = settings
        self.staff_groups = set(staff_groups)
        self.known: set[str] = set()  # dedup keys of alerts that exist: they grow by each attempt
        self._episodes: dict[tuple[str, str], list[_Episode]] = {}
        self._pending: dict[tuple[str, str], list[_Episode]] = {}  # not (yet) counted
        self._subjects: dict[str, _Subject] = {}
        self._zone = ZoneInfo(settings.timezone)
        self._latest = 0.0

    # --- feeding ----------------------------------------------------------------------------

    def feed(self, events: Iterable[StoredEvent], *, silent: bool = False) -> list[AlertUpdate]:
        """Process stored events (in id order); ``silent`` rebuilds the windows after a restart
        without producing updates for what was already processed."""
        merged: dict[str, AlertUpdate] = {}
        staff = self.staff_groups
        one = self._event
        for event in events:
            if event.action != "block" and event.flag is None:
                continue
            if event.group_id in staff:
                continue  # staff are not session-bound and not the subject of rule 2.7
            if event.time > self._latest:
                self._latest = event.time
            updates = one(event)
            if silent or not updates:
                continue
            for u in updates:  # one update per alert and round: one upsert each
                m = merged.get(u.key)
                if m is None:
                    merged[u.key] = u
                else:
                    m.new_attempts += u.new_attempts
                    m.evidence += u.evidence
                    m.subject = u.subject
        return list(merged.values())

    def expire(self, now: float | None = None) -> None:
        """Forget what lies outside every window (call now and then)."""
        horizon = (now or self._latest) - self.settings.window_seconds - 60
        for key in [k for k, eps in self._episodes.items() if eps[-1].last < horizon]:
            del self._episodes[key]
            self._pending.pop(key, None)
        for key in [k for k, s in self._subjects.items()
                    if (not s.serious or s.serious[-1][0] < horizon)
                    and (not s.other or s.other[-1][0] < horizon)]:
            del self._subjects[key]

    # --- one event --------------------------------------------------------------------------

    def _event(self, e: StoredEvent) -> list[AlertUpdate]:
        if e.flag == _SEARCH_TERM:
            return self._attempt_updates(RuleId.SEARCH_TERMS, SEARCH, [e], e, 1)
        if e.noise in IGNORED_NOISE:
            return []
        s = self.settings
        key = (e.client, e.host)
        episodes = self._episodes.get(key)
        if episodes is None:
            episodes = self._episodes[key] = []
        episode = None
        for candidate in episodes[-1:-4:-1]:  # events come nearly in time order
            if candidate.start - s.episode_seconds <= e.time <= candidate.last + s.episode_seconds:
                episode = candidate
                break
        pending = self._pending.get(key)
        if pending is None:
            pending = self._pending[key] = []
        if episode is None:
            episode = _Episode(e.time, e.time, [e], e.channel != "dns",
                               e.noise == _THIRD_PARTY, bypass=_is_bypass(e))
            episodes.append(episode)
            if len(episodes) > 1 and episodes[-2].start > e.time:  # a replayed event, late
                episodes.sort(key=lambda ep: ep.start)
            while episodes[0].last < e.time - s.window_seconds:
                episodes.pop(0)  # outside the window: no longer "asked for again"
            # Only episodes that may still count are looked at again; a third-party
            # resource outside the mandatory categories never will.
            if not episode.third_party or e.category in s.mandatory:
                pending.append(episode)
            if pending and pending[0].last < e.time - s.window_seconds:
                pending[:] = [ep for ep in pending if ep.last >= e.time - s.window_seconds]
        else:
            was_bypass = episode.bypass
            episode.add(e)
            if episode.counted:
                if episode.bypass and not was_bypass and s.bypass:  # e.g. an SNI mismatch
                    episode.key = self.dedup_key(e, BYPASS)
                    return self._attempt_updates(RuleId.BYPASS, BYPASS, episode.events, e, 1)
                return self._evidence_only(episode, e)  # more evidence, same attempt
        # The episodes left are those within the window: "the same site asked for again".
        repeated = len(episodes)
        out: list[AlertUpdate] = []
        counted = False
        for ep in pending:
            if not ep.counted and self._counts(ep, repeated, e.category):
                ep.counted = True
                counted = True
                out += self._attempt(ep)
        if counted:  # counted episodes are never looked at again: keep pending short
            pending[:] = [ep for ep in pending if not ep.counted]
        return out

    def _counts(self, ep: _Episode, repeated: int, category: str | None) -> bool:
        s = self.settings
        if ep.third_party:
            return category in s.mandatory and repeated >= max(2, s.dns_repeats)
        return ep.connection or repeated >= s.dns_repeats

    def _evidence_only(self, ep: _Episode, e: StoredEvent) -> list[AlertUpdate]:
        if ep.key is None or ep.key not in self.known:
            return []
        if ep.events[-1] is not e:
            return []  # past MAX_EVIDENCE: the alert has enough of this attempt
        rule, category = self._classify(ep)
        return [AlertUpdate(ep.key, rule or "", category, 0, [e], e)]

    def _classify(self, ep: _Episode) -> tuple[str | None, str]:
        s = self.settings
        first = ep.events[0]
        if s.bypass and ep.bypass:
            return RuleId.BYPASS, BYPASS
        category = first.category
        if category in s.mandatory or category in s.serious:
            return RuleId.REPEATED_ATTEMPTS, category  # type: ignore[return-value]
        if first.reason in CHOSEN_REASONS:
            return RuleId.MANY_SITES, VARIOUS
        return None, ""

    def _attempt(self, ep: _Episode) -> list[AlertUpdate]:
        rule, category = self._classify(ep)
        latest = max(ep.events, key=lambda ev: ev.time)
        if rule is None:
            return []
        ep.key = self.dedup_key(latest, category)
        if rule == RuleId.BYPASS:
            return self._attempt_updates(rule, BYPASS, ep.events, latest, 1)
        s = self.settings
        subject_key = self.subject_key(latest)
        subject = self._subjects.get(subject_key)
        if subject is None:
            subject = self._subjects[subject_key] = _Subject()
        lane = subject.serious if rule == RuleId.REPEATED_ATTEMPTS else subject.other
        lane.append((ep.start, category, latest.host, ep))
        while lane and (lane[0][0] < ep.start - s.window_seconds - 60
                        or len(lane) > MAX_LANE):
            lane.popleft()
        key = ep.key
        if rule == RuleId.MANY_SITES:
            site = _site(latest.host)
            subject.sites[site] = max(subject.sites.get(site, 0.0), ep.start)
        if key in self.known:  # the alert exists: this attempt adds to it
            return [AlertUpdate(key, rule, category, 1, list(ep.events), latest)]
        if rule == RuleId.MANY_SITES and sum(
                1 for t in subject.sites.values()
                if abs(t - ep.start) <= s.window_seconds) < s.distinct_sites:
            return []  # counted per site, without walking the whole lane
        session = latest.session_id  # a new lesson starts counting afresh
        window = [a for a in lane if abs(a[0] - ep.start) <= s.window_seconds
                  and a[3].events[0].session_id == session]
        if rule == RuleId.REPEATED_ATTEMPTS:
            if len(window) < s.attempts:
                return []
            out = []
            for cat in dict.fromkeys(a[1] for a in window):  # each category present, in order
                mine = [a for a in window if a[1] == cat]
                cat_key = self.dedup_key(latest, cat)
                if cat_key in self.known and cat != category:
                    continue  # already counted its own attempts as they came
                evidence = [ev for a in mine for ev in a[3].events]
                self.known.add(cat_key)
                out.append(AlertUpdate(cat_key, rule, cat, len(mine), evidence, latest))
            return out
        hosts = {_site(a[2]) for a in window}
        if len(hosts) < s.distinct_sites:
            return []
        self.known.add(key)
        evidence = [ev for a in window for ev in a[3].events]
        return [AlertUpdate(key, rule, VARIOUS, len(window), evidence, latest)]

    def _attempt_updates(self, rule: str, category: str, events: list[StoredEvent],
                         latest: StoredEvent, attempts: int) -> list[AlertUpdate]:
        key = self.dedup_key(latest, category)
        self.known.add(key)
        return [AlertUpdate(key, rule, category, attempts, list(events), latest)]

    # --- keys -------------------------------------------------------------------------------

    @staticmethod
    def subject_key(e: StoredEvent) -> str:
        if e.student_id is not None:
            return f"student:{e.student_id}"
        if e.device_id is not None:
            return f"device:{e.device_id}"
        return f"client:{e.client}"

    def dedup_key(self, e: StoredEvent, category: str) -> str:
        """One alert per subject, category and session; outside a session, per school day."""
        if e.session_id is not None:
            scope = f"session:{e.session_id}"
        else:
            day = dt.datetime.fromtimestamp(e.time, self._zone).date()
            scope = f"day:{day.isoformat()}"
        return f"{self.subject_key(e)}|{category}|{scope}"


def _site(host: str) -> str:
    """``www.games.example`` and ``games.example`` are one site for ``distinct_sites``."""
    return host[4:] if host.startswith("www.") else host
