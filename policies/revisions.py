"""Policy revisions: import a document as a new revision, export, history, diff and rollback.

Every change is a revision that records who made it, when, and the council decision
(protocol number and date) it implements. Each rule row remembers the revision that
introduced it (``origin_revision_id``), so the log and the block page can name the decision.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from policies.database import bump_version, utcnow
from policies.decision import CouncilDecision
from policies.document import PolicyDocument, parse_document, render_document
from policies.errors import NotFound, PolicyError
from policies.models import (
    Category,
    CategorySite,
    Device,
    Group,
    GroupCategoryAction,
    Network,
    PolicyRevision,
    Room,
    ScheduleWindow,
    School,
    SchoolClass,
    SiteRule,
)
from policies.validation import validate_document


@dataclass(frozen=True)
class ImportResult:
    revision: PolicyRevision
    changed: bool


def check_document(text: str, file: str = "<policy>") -> PolicyDocument:
    """Parse and validate without touching the database (``kalkan policy validate``)."""
    doc, located = parse_document(text, file)
    return validate_document(doc, located)


def import_policy(db: Session, text: str, *, file: str, decision: CouncilDecision,
                  author: str, comment: str = "") -> ImportResult:
    """Validate ``text`` and apply it as a new revision; on any error nothing is changed."""
    doc = check_document(text, file)
    return apply_as_revision(db, doc, decision=decision, author=author, comment=comment)


def apply_as_revision(db: Session, doc: PolicyDocument, *, decision: CouncilDecision,
                      author: str, comment: str = "") -> ImportResult:
    """Apply ``doc`` and commit it as one revision; on any error roll back and re-raise."""
    try:
        return _apply_as_revision(db, doc, decision=decision, author=author, comment=comment)
    except BaseException:
        db.rollback()  # nothing half-applied may reach a later commit of the caller's session
        raise


def _apply_as_revision(db: Session, doc: PolicyDocument, *, decision: CouncilDecision,
                       author: str, comment: str) -> ImportResult:
    previous = latest_revision(db)
    before = previous.document if previous else ""  # what the previous revision left
    try:
        decision_date = dt.date.fromisoformat(str(decision.date))
    except ValueError:
        raise PolicyError(f"{decision.date!r} is not a date",
                          hint="give the council decision's date as YYYY-MM-DD") from None
    if not str(decision.protocol).strip():
        raise PolicyError("the council decision's protocol number is empty",
                          hint="give the number of the protocol that approved this change")
    _check_classes_keep_their_groups(db, doc)
    from district.baseline import check_school_policy  # district/ builds on policies/

    check_school_policy(db, doc)  # a school of a district may not weaken its baseline
    revision = PolicyRevision(created_at=utcnow(), author=author, protocol=decision.protocol,
                              decision_date=decision_date, comment=comment, document="")
    db.add(revision)
    db.flush()
    _apply(db, doc, revision.id)
    db.flush()
    after = export_policy(db)
    revision.document = after
    revision.diff = "".join(difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True),
        fromfile=f"revision {previous.id}" if previous else "empty",
        tofile=f"revision {revision.id}"))
    bump_version(db)
    db.commit()
    return ImportResult(revision, changed=before != after)


def latest_revision(db: Session) -> PolicyRevision | None:
    return db.scalar(select(PolicyRevision).order_by(PolicyRevision.id.desc()).limit(1))


def get_revision(db: Session, number: int) -> PolicyRevision:
    rev = db.get(PolicyRevision, number)
    if rev is None:
        raise NotFound(f"there is no policy revision {number}",
                       hint="`kalkan policy history` lists the revisions")
    return rev


def history(db: Session) -> list[PolicyRevision]:
    return list(db.scalars(select(PolicyRevision).order_by(PolicyRevision.id)))


def diff_revisions(db: Session, a: int, b: int) -> str:
    ra, rb = get_revision(db, a), get_revision(db, b)
    return "".join(difflib.unified_diff(
        ra.document.splitlines(keepends=True), rb.document.splitlines(keepends=True),
        fromfile=f"revision {a}", tofile=f"revision {b}"))


def rollback(db: Session, number: int, *, decision: CouncilDecision, author: str,
             comment: str = "") -> ImportResult:
    """Make revision ``number``'s policy current again, as a new revision."""
    old = get_revision(db, number)
    note = f"rollback to revision {number}" + (f": {comment}" if comment else "")
    return import_policy(db, old.document, file=f"revision {number}", decision=decision,
                         author=author, comment=note)


# --- applying a document to rows ----------------------------------------------------------

def _apply(db: Session, doc: PolicyDocument, revision_id: int) -> None:
    origins = _current_origins(db)

    def origin(key: tuple) -> int:
        return origins.get(key, revision_id)

    school = db.get(School, doc.school.id)
    for other in db.scalars(select(School).where(School.id != doc.school.id)):
        db.delete(other)
    if school is None:
        school = School(id=doc.school.id)
        db.add(school)
    school.name, school.language = doc.school.name, doc.school.language
    school.timezone = doc.school.timezone

    db.execute(delete(SiteRule))
    db.execute(delete(CategorySite))
    db.execute(delete(GroupCategoryAction))
    db.execute(delete(ScheduleWindow))
    db.execute(delete(Network))
    db.flush()

    _sync(db, Category, [c.id for c in doc.categories])
    for pos, cat in enumerate(doc.categories):
        row = db.get(Category, cat.id) or Category(id=cat.id)
        row.mandatory, row.names, row.position = cat.mandatory, dict(cat.names), pos
        db.add(row)

    wanted_groups = [g.id for g in doc.groups]
    for pos, g in enumerate(doc.groups):
        row = db.get(Group, g.id) or Group(id=g.id)
        row.name, row.kind, row.mode = g.name, g.kind.value, g.mode.value
        row.safe_search, row.youtube_restricted = g.safe_search, g.youtube.value
        row.session_required, row.downloads_allowed, row.position = (
            g.session_required, g.downloads, pos)
        db.add(row)
    db.flush()

    for pos, r in enumerate(doc.rooms):
        row = db.get(Room, r.id) or Room(id=r.id)
        row.name, row.default_group_id, row.position = r.name, r.default_group, pos
        db.add(row)
    db.flush()
    _sync(db, Room, [r.id for r in doc.rooms])
    _sync(db, Group, wanted_groups)
    for r in doc.rooms:
        for cidr in r.networks:
            db.add(Network(room_id=r.id, cidr=cidr))

    for g in doc.groups:
        for action in ("allow", "block"):
            for cid in getattr(g.categories, action):
                db.add(GroupCategoryAction(group_id=g.id, category_id=cid, action=action,
                                           origin_revision_id=origin(("cat", g.id, cid, action))))
            for site in getattr(g.sites, action):
                db.add(_site_rule(g.id, site, action, origin))
        for w in g.schedule:
            db.add(ScheduleWindow(group_id=g.id, days=w.days, start=w.start, end=w.end))
    for action in ("allow", "block"):
        for site in getattr(doc.sites, action):
            db.add(_site_rule(None, site, action, origin))

    # Devices are updated in place, not recreated: students and events point at them.
    _sync(db, Device, [d.id for d in doc.devices])
    for d in db.scalars(select(Device)):
        d.ip = d.mac = None  # free the unique addresses before they are handed out again
    db.flush()
    for pos, d in enumerate(doc.devices):
        row = db.get(Device, d.id) or Device(id=d.id)
        row.ip, row.mac, row.room_id, row.seat = d.ip, d.mac, d.room, d.seat
        row.group_id, row.position = d.group, pos
        db.add(row)
    rows = []
    for cid, entries in doc.category_sites.items():
        for entry in entries:
            domain, _, path = entry.partition("/")
            rows.append({"category_id": cid, "domain": domain, "path": "/" + path if path else None,
                         "origin_revision_id": origin(("csite", cid, entry))})
    if rows:
        db.execute(CategorySite.__table__.insert(), rows)


def _check_classes_keep_their_groups(db: Session, doc: PolicyDocument) -> None:
    """Refuse, before anything is written, a document without a group that a class is in."""
    wanted = [g.id for g in doc.groups]
    cls = db.scalar(select(SchoolClass).where(SchoolClass.group_id.not_in(wanted))
                    .order_by(SchoolClass.grade, SchoolClass.id).limit(1))
    if cls is not None:
        raise PolicyError(f"group {cls.group_id!r} is still used by class {cls.id!r}",
                          hint="move the class to another group first, or keep the group")


def _site_rule(group_id: str | None, site: str, action: str, origin) -> SiteRule:
    domain, _, path = site.partition("/")
    return SiteRule(group_id=group_id, domain=domain, path="/" + path if path else None,
                    action=action, origin_revision_id=origin(("site", group_id, site, action)))


def _sync(db: Session, model: Any, wanted: list[str]) -> None:
    """Delete rows of ``model`` whose id is not in ``wanted`` (updates happen in place)."""
    for row in db.scalars(select(model).where(model.id.not_in(wanted))):
        db.delete(row)
    db.flush()


def _current_origins(db: Session) -> dict[tuple, int]:
    """Which revision introduced each rule now in force, keyed as ``_apply`` keys them."""
    out: dict[tuple, int] = {}
    for a in db.scalars(select(GroupCategoryAction)):
        if a.origin_revision_id:
            out[("cat", a.group_id, a.category_id, a.action)] = a.origin_revision_id
    for s in db.scalars(select(SiteRule)):
        if s.origin_revision_id:
            out[("site", s.group_id, s.domain + (s.path or ""), s.action)] = s.origin_revision_id
    for row in db.execute(select(CategorySite.category_id, CategorySite.domain, CategorySite.path,
                                 CategorySite.origin_revision_id)):
        if row.origin_revision_id:
            out[("csite", row.category_id, row.domain + (row.path or ""))] = row.origin_revision_id
    return out


# --- exporting rows as a document ---------------------------------------------------------

def export_data(db: Session) -> dict[str, Any]:
    """The current policy as plain data in canonical order (what ``render_document`` writes)."""
    school = db.scalar(select(School).limit(1))
    data: dict[str, Any] = {"kalkan_policy": 1}
    data["school"] = {"id": school.id, "name": school.name, "language": school.language,
                      "timezone": school.timezone} if school else {}
    data["categories"] = [
        {"id": c.id, "mandatory": c.mandatory, "names": dict(c.names)}
        for c in db.scalars(select(Category).order_by(Category.position, Category.id))]

    actions: dict[str, dict[str, list[str]]] = {}
    for a in db.scalars(select(GroupCategoryAction).order_by(GroupCategoryAction.id)):
        actions.setdefault(a.group_id, {"allow": [], "block": []})[a.action].append(a.category_id)
    sites: dict[str | None, dict[str, list[str]]] = {}
    for s in db.scalars(select(SiteRule).order_by(SiteRule.id)):
        sites.setdefault(s.group_id, {"allow": [], "block": []})[s.action].append(
            s.domain + (s.path or ""))
    groups = []
    for g in db.scalars(select(Group).order_by(Group.position, Group.id)):
        groups.append({
            "id": g.id, "name": g.name, "kind": g.kind, "mode": g.mode,
            "safe_search": g.safe_search, "youtube": g.youtube_restricted,
            "session_required": g.session_required, "downloads": g.downloads_allowed,
            "schedule": [{"days": w.days, "from": w.start, "to": w.end} for w in g.schedule],
            "categories": actions.get(g.id) or {"allow": [], "block": []},
            "sites": sites.get(g.id) or {"allow": [], "block": []},
        })
    data["groups"] = groups
    data["rooms"] = [
        {"id": r.id, "name": r.name, "default_group": r.default_group_id,
         "networks": [n.cidr for n in r.networks]}
        for r in db.scalars(select(Room).order_by(Room.position, Room.id))]
    devices = []
    for d in db.scalars(select(Device).order_by(Device.position, Device.id)):
        entry = {"id": d.id, "ip": d.ip, "mac": d.mac, "room": d.room_id, "seat": d.seat,
                 "group": d.group_id}
        devices.append({k: v for k, v in entry.items() if v is not None or k == "id"})
    data["devices"] = devices
    data["sites"] = sites.get(None) or {"allow": [], "block": []}
    category_sites: dict[str, list[str]] = {}
    for row in db.execute(select(CategorySite.category_id, CategorySite.domain, CategorySite.path)
                          .order_by(CategorySite.id)):
        category_sites.setdefault(row.category_id, []).append(row.domain + (row.path or ""))
    data["category_sites"] = category_sites
    return data


def export_policy(db: Session) -> str:
    return render_document(export_data(db))
