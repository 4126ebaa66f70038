"""Council edits as changes to the policy document, saved only through a revision.

The pages never write policy rows: they take ``export_data(db)``, change that plain data with
the functions here, and hand it to :func:`save_policy`, which renders the document and imports
it as a new revision with the council decision (the same path as ``kalkan policy import``, so
the same validation, history and diff). :func:`describe_changes` puts a diff in words.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy.orm import Session

from policies.categories import MANDATORY_FOR_STUDENTS
from policies.decision import CouncilDecision
from policies.document import render_document
from policies.errors import KalkanError, PolicyError
from policies.models import GroupKind, GroupMode, YoutubeRestriction
from policies.revisions import ImportResult, export_policy, import_policy, latest_revision

INHERIT = ""  # a matrix cell with no action: the group's mode decides
CELL_VALUES = ("allow", "block", INHERIT)
SCHEDULE_LINE = re.compile(r"^\s*(?P<days>[a-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*[-–]\s*"
                           r"(?P<end>\d{1,2}:\d{2})\s*$", re.IGNORECASE)


class StaleEdit(KalkanError):
    """The policy changed after the page was opened: saving would undo someone else's change."""


def mandatory_ids(data: dict[str, Any]) -> frozenset[str]:
    return frozenset(c["id"] for c in data["categories"] if c["mandatory"]) | (
        MANDATORY_FOR_STUDENTS)


def is_locked(data: dict[str, Any], group: dict[str, Any], category: str) -> bool:
    """Regulation 3.3: a mandatory category is always blocked for a student group."""
    return group["kind"] == GroupKind.STUDENT and category in mandatory_ids(data)


def group_of(data: dict[str, Any], group_id: str) -> dict[str, Any]:
    for g in data["groups"]:
        if g["id"] == group_id:
            return g
    raise KalkanError(f"there is no group {group_id!r}")


def cell(group: dict[str, Any], category: str) -> str:
    for action in ("allow", "block"):
        if category in group["categories"][action]:
            return action
    return INHERIT


def set_category_actions(data: dict[str, Any], cells: dict[tuple[str, str], str]
                         ) -> dict[str, Any]:
    """A copy of ``data`` with each ``(group, category)`` cell set to allow, block or inherit.

    Locked cells may only be set to block; entries that stay keep their place, so the revision's
    diff shows only what the council changed.
    """
    new = copy.deepcopy(data)
    known = {c["id"] for c in data["categories"]}
    for (gid, cid), value in cells.items():
        if value not in CELL_VALUES:
            raise KalkanError(f"{value!r} is not allow, block or empty")
        if cid not in known:
            raise KalkanError(f"there is no category {cid!r}")
        group = group_of(new, gid)
        if is_locked(new, group, cid) and value != "block":
            if value == INHERIT and cell(group, cid) == INHERIT:
                continue  # blocked by the regulation anyway; nothing to write
            raise PolicyError(f"group {gid!r} may not allow the mandatory category {cid!r}",
                              hint="regulation 3.3: it is always blocked for students")
        lists = group["categories"]
        for action in ("allow", "block"):
            if action != value and cid in lists[action]:
                lists[action].remove(cid)
        if value and cid not in lists[value]:
            lists[value].append(cid)
    return new


def set_group_settings(data: dict[str, Any], group_id: str, *, mode: str, safe_search: bool,
                       youtube: str, downloads: bool, session_required: bool) -> dict[str, Any]:
    new = copy.deepcopy(data)
    group = group_of(new, group_id)
    group["mode"] = GroupMode(mode).value
    group["youtube"] = YoutubeRestriction(youtube).value
    group.update(safe_search=safe_search, downloads=downloads, session_required=session_required)
    return new


def parse_site_lines(text: str) -> list[str]:
    """One site per line (or separated by spaces or commas); blank lines and ``#`` notes go."""
    sites = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        sites.extend(s for s in re.split(r"[\s,]+", line) if s)
    return list(dict.fromkeys(sites))


def set_site_lists(data: dict[str, Any], group_id: str | None, *, allow: list[str],
                   block: list[str]) -> dict[str, Any]:
    """Replace a group's lists, or the lists for every group when ``group_id`` is None."""
    new = copy.deepcopy(data)
    target = new["sites"] if group_id is None else group_of(new, group_id)["sites"]
    target["allow"], target["block"] = list(allow), list(block)
    return new


def parse_schedule_lines(text: str) -> list[dict[str, str]]:
    """``mon-fri 08:00-17:00`` per line into schedule windows; errors name the line."""
    windows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = SCHEDULE_LINE.match(line)
        if match is None:
            raise PolicyError(f"line {number}: {line.strip()!r} is not a schedule window",
                              hint="write days and times like: mon-fri 08:00-17:00")
        start, end = (_hhmm(match[k]) for k in ("start", "end"))
        windows.append({"days": match["days"].replace(" ", "").lower(), "from": start,
                        "to": end})
    return windows


def _hhmm(text: str) -> str:
    hour, minute = text.split(":")
    return f"{int(hour):02d}:{minute}"


def schedule_lines(windows: list[dict[str, str]]) -> str:
    return "\n".join(f"{w['days']} {w['from']}-{w['to']}" for w in windows)


def set_schedule(data: dict[str, Any], group_id: str, windows: list[dict[str, str]]
                 ) -> dict[str, Any]:
    new = copy.deepcopy(data)
    group_of(new, group_id)["schedule"] = list(windows)
    return new


def save_policy(db: Session, data: dict[str, Any], *, decision: CouncilDecision, author: str,
                comment: str = "", base_revision: int | None = None) -> ImportResult | None:
    """Import ``data`` as a new revision; None when it changes nothing.

    ``base_revision`` is the revision the form was made from: if another has been saved
    since, the save is refused rather than silently undoing it.
    """
    latest = latest_revision(db)
    if base_revision is not None and latest is not None and latest.id != base_revision:
        raise StaleEdit(f"revision {latest.id} was saved after this page was opened",
                        hint="open the page again and redo the change")
    text = render_document(data)
    if text == export_policy(db):
        return None
    return import_policy(db, text, file="web form", decision=decision, author=author,
                         comment=comment)


@dataclass(frozen=True)
class Change:
    """One difference between two policies, for a readable history.

    ``kind`` picks the sentence (category, site, setting, schedule, group, room, device,
    category_list, school); ``scope`` is the group id ('' for every group).
    """

    kind: str
    scope: str
    subject: str
    old: str
    new: str


def describe_changes(before: dict[str, Any] | str, after: dict[str, Any] | str) -> list[Change]:
    """What changed between two policies (plain data or document text), in the council's terms."""
    a = _as_data(before)
    b = _as_data(after)
    changes: list[Change] = []
    groups_a = {g["id"]: g for g in a.get("groups", [])}
    groups_b = {g["id"]: g for g in b.get("groups", [])}
    for gid in groups_a.keys() - groups_b.keys():
        changes.append(Change("group", gid, groups_a[gid]["name"], "present", "removed"))
    for gid, gb in groups_b.items():
        ga = groups_a.get(gid)
        if ga is None:
            changes.append(Change("group", gid, gb["name"], "", "added"))
            continue
        cats = {c for g in (ga, gb) for lst in g["categories"].values() for c in lst}
        for cid in sorted(cats):
            old, new = cell(ga, cid), cell(gb, cid)
            if old != new:
                changes.append(Change("category", gid, cid, old, new))
        changes.extend(_site_changes(gid, ga["sites"], gb["sites"]))
        for key in ("name", "mode", "safe_search", "youtube", "session_required", "downloads"):
            if ga.get(key) != gb.get(key):
                changes.append(Change("setting", gid, key, _text(ga.get(key)),
                                      _text(gb.get(key))))
        if ga.get("schedule") != gb.get("schedule"):
            changes.append(Change("schedule", gid, "", _schedule_text(ga.get("schedule")),
                                  _schedule_text(gb.get("schedule"))))
    changes.extend(_site_changes("", a.get("sites", {}), b.get("sites", {})))
    for section, kind in (("rooms", "room"), ("devices", "device")):
        items_a = {r["id"]: r for r in a.get(section, [])}
        items_b = {r["id"]: r for r in b.get(section, [])}
        for rid in sorted(items_a.keys() | items_b.keys()):
            ra, rb = items_a.get(rid), items_b.get(rid)
            if ra != rb:
                changes.append(Change(kind, "", rid, "" if ra is None else "present",
                                      "removed" if rb is None else "changed" if ra else "added"))
    lists_a, lists_b = a.get("category_sites", {}), b.get("category_sites", {})
    for cid in sorted(lists_a.keys() | lists_b.keys()):
        old_set, new_set = set(lists_a.get(cid, [])), set(lists_b.get(cid, []))
        for site in sorted(new_set - old_set):
            changes.append(Change("category_list", cid, site, "", "added"))
        for site in sorted(old_set - new_set):
            changes.append(Change("category_list", cid, site, "present", "removed"))
    if a.get("school") != b.get("school") and a.get("school"):
        changes.append(Change("school", "", "", "", "changed"))
    return changes


def _site_changes(scope: str, a: dict[str, list[str]], b: dict[str, list[str]]) -> list[Change]:
    out = []
    for action in ("allow", "block"):
        old, new = set(a.get(action, [])), set(b.get(action, []))
        for site in sorted(new - old):
            out.append(Change("site", scope, site, "", action))
        for site in sorted(old - new):
            out.append(Change("site", scope, site, action, ""))
    return out


def _as_data(policy: dict[str, Any] | str) -> dict[str, Any]:
    if isinstance(policy, str):
        return yaml.safe_load(policy) or {} if policy else {}
    return policy


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _schedule_text(windows: list[dict[str, str]] | None) -> str:
    return "; ".join(f"{w['days']} {w['from']}–{w['to']}" for w in windows or [])
