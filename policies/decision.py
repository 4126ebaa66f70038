"""What the engine answers: an action, the reason for it, and what it matched."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


class Action(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


class Reason(StrEnum):
    """Why a decision came out as it did. The value is what the log stores: never rename."""

    MANDATORY_CATEGORY = "mandatory_category"  # in DESIGN.md's precedence order
    SESSION_MODE = "session_mode"
    OUTSIDE_SCHEDULE = "schedule"
    NO_SESSION = "no_session"
    SITE_LIST = "site_list"
    CATEGORY = "category"
    GROUP_DEFAULT = "group_default"
    SAFE_SEARCH = "safe_search"  # allowed, but answered with the engine's safe variant
    BYPASS_ATTEMPT = "bypass_attempt"
    INVALID_HOST = "invalid_host"
    DOWNLOAD = "download"  # the proxy: a program or media download (regulation 3.3)


@dataclass(frozen=True, slots=True)
class CouncilDecision:
    """The methodical council's decision a rule implements: protocol number and date."""

    protocol: str
    date: str  # ISO date, as written in the protocol

    def __str__(self) -> str:
        return f"protocol No {self.protocol} of {self.date}"


class Decision(NamedTuple):
    """One answer of :func:`policies.engine.Engine.decide`, with everything needed to explain it.

    ``rule`` is the matched rule in words the policy document uses (``site list: block
    games.example (group middle)``); ``matched`` is the list entry or category domain that hit.
    A named tuple rather than a frozen dataclass: it is made for every DNS query and HTTP
    request, and a tuple is built three times faster (bench/decide_bench.py).
    """

    action: Action
    reason: Reason
    host: str
    client: str
    group: str | None = None
    room: str | None = None
    device: str | None = None
    session: int | None = None
    category: str | None = None
    rule: str | None = None
    matched: str | None = None
    council: CouncilDecision | None = None
    revision: int | None = None
    detail: str | None = None

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    def explain(self) -> str:
        """The reasoning in words, as ``kalkan check``, the block page and the log show it."""
        verb = "Blocked" if self.blocked else "Allowed"
        who = f"client {self.client}"
        if self.device:
            who += f" (device {self.device})"
        where = f"room {self.room}" if self.room else "no known room"
        lines = [f"{verb}: {self.host} for {who}, {where}, group {self.group or '—'}."]
        lines.append(f"Reason: {_REASON_TEXT[self.reason]}")
        if self.detail:
            lines.append(f"Detail: {self.detail}")
        if self.category:
            lines.append(f"Category: {self.category}")
        if self.rule:
            lines.append(f"Rule: {self.rule}")
        if self.matched and self.matched != self.host:
            lines.append(f"Matched entry: {self.matched}")
        if self.session is not None:
            lines.append(f"Session: #{self.session}")
        if self.council:
            rev = f" (policy revision {self.revision})" if self.revision else ""
            lines.append(f"Council decision: {self.council}{rev}")
        return "\n".join(lines)


_REASON_TEXT = {
    Reason.MANDATORY_CATEGORY: "the site is in a category that regulation 3.3 bars for "
    "students; no rule can allow it",
    Reason.SESSION_MODE: "the teacher's session limits what can be reached now",
    Reason.OUTSIDE_SCHEDULE: "the group's internet schedule does not include this time",
    Reason.NO_SESSION: "students go online only during a session opened by a teacher "
    "(regulation 2.9), and none is open for this room",
    Reason.SITE_LIST: "the site is on a site list",
    Reason.CATEGORY: "the site's category has an action in the group's policy",
    Reason.GROUP_DEFAULT: "no list or category rule matched, so the group's mode decides",
    Reason.SAFE_SEARCH: "allowed with safe search enforced",
    Reason.BYPASS_ATTEMPT: "the request looks like an attempt to get round the filter",
    Reason.INVALID_HOST: "the name is not a valid host name",
    Reason.DOWNLOAD: "students may not download programs or media files without permission "
    "(regulation 3.3)",
}
