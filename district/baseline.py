"""The district baseline: categories every school must block for students, and the district's
own list entries for them. Schools extend it; no school policy may weaken it.

The document (YAML)::

    kalkan_baseline: 1
    district: Osh city education department
    mandatory: [adult, violence, terrorism, extremism, hatred, gambling]
    sites:                    # the district's entries, by mandatory category
      extremism: [bad.example.kg]

It is published as a revision that names the district decision it implements (protocol,
date), like a school's council revision. The engine adds it to every school's snapshot
(:func:`merge_into`): its categories become mandatory and its entries join the category lists,
so they are blocked for students before any school rule is looked at (precedence step 1).
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from district.models import DISTRICT_SCHEMA, BaselineRevision
from policies.database import utcnow
from policies.decision import CouncilDecision
from policies.document import SLUG, PolicyDocument, normalise_sites
from policies.errors import MandatoryCategoryAllowed, PolicyError
from policies.lookup import CategoryLookup, InMemoryCategoryIndex
from policies.models import GroupKind
from policies.snapshot import Snapshot, chain_lookups
from policies.yamlfile import load_located


class BaselineDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kalkan_baseline: int = 1
    district: str = "District"
    mandatory: list[Annotated[str, Field(pattern=SLUG)]] = Field(default_factory=list)
    sites: dict[Annotated[str, Field(pattern=SLUG)], list[str]] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Baseline:
    """The baseline in force, as the engine and the validator use it."""

    revision: int
    decision: CouncilDecision
    mandatory: frozenset[str]
    entries: tuple[tuple[str, str], ...]  # (category, domain or domain/path)

    @property
    def source(self) -> str:
        return f"district baseline r{self.revision}"

    def blocked_entry(self, site: str) -> tuple[str, str] | None:
        """(category, entry) of the baseline entry that ``site`` is, or lies below."""
        domain = site.partition("/")[0]
        for category, entry in self.entries:
            base = entry.partition("/")[0]
            if domain == base or domain.endswith("." + base):
                return category, entry
        return None


NO_BASELINE = Baseline(0, CouncilDecision("", ""), frozenset(), ())


def parse_baseline(text: str, file: str = "<baseline>") -> BaselineDocument:
    """Parse and check a baseline document; errors name the file and line."""
    located = load_located(text, file, PolicyError)
    if not isinstance(located.data, dict):
        raise PolicyError("a baseline is a YAML mapping", file=file, line=1,
                          hint="start with `kalkan_baseline: 1` and `mandatory: [...]`")
    try:
        doc = BaselineDocument.model_validate(located.data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        raise PolicyError(f"{'.'.join(map(str, loc))}: {err['msg']}", file=file,
                          line=located.line_of(loc),
                          hint="keys: kalkan_baseline, district, mandatory, sites") from None
    for category in doc.sites:
        if category not in doc.mandatory:
            raise PolicyError(f"sites are listed for {category!r}, which the baseline does not "
                              "make mandatory", file=file, line=located.line_of(("sites",
                                                                                 category)),
                              hint=f"add {category} to `mandatory:`, or list the sites in a "
                                   "school policy")
    sites = {c: normalise_sites(v, ("sites", c), located) for c, v in doc.sites.items()}
    return doc.model_copy(update={"sites": sites})


def publish_baseline(db: Session, text: str, *, file: str, decision: CouncilDecision,
                     author: str, comment: str = "") -> BaselineRevision:
    """Check ``text`` and store it as the new baseline revision; gateways pick it up."""
    parse_baseline(text, file)
    try:
        decision_date = dt.date.fromisoformat(str(decision.date))
    except ValueError:
        raise PolicyError(f"{decision.date!r} is not a date",
                          hint="give the district decision's date as YYYY-MM-DD") from None
    if not str(decision.protocol).strip():
        raise PolicyError("the district decision's number is empty",
                          hint="give the number of the order or protocol behind this baseline")
    previous = db.scalar(select(BaselineRevision).order_by(BaselineRevision.id.desc()).limit(1))
    before = previous.document if previous else ""
    revision = BaselineRevision(
        created_at=utcnow(), author=author, protocol=decision.protocol,
        decision_date=decision_date, comment=comment, document=text,
        diff="".join(difflib.unified_diff(
            before.splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=f"baseline {previous.id}" if previous else "empty", tofile="new")))
    db.add(revision)
    db.commit()
    return revision


def _district_options(db: Session) -> Mapping[str, Any]:
    # A school's connection has its own schema first in the search path; the baseline lives in
    # the district's. SQLite (one school) has one schema.
    if db.get_bind().dialect.name == "postgresql":
        return {"schema_translate_map": {None: DISTRICT_SCHEMA}}
    return {}


def baseline_version(db: Session) -> int:
    """The newest baseline revision number (0: none); one indexed read, polled every second."""
    return db.execute(select(func.max(BaselineRevision.id)),
                      execution_options=_district_options(db)).scalar() or 0


def current_baseline(db: Session) -> Baseline:
    """The baseline in force, or :data:`NO_BASELINE` when the district has published none."""
    row = db.execute(select(BaselineRevision).order_by(BaselineRevision.id.desc()).limit(1),
                     execution_options=_district_options(db)).scalar()
    if row is None:
        return NO_BASELINE
    doc = parse_baseline(row.document, f"district baseline r{row.id}")
    return Baseline(
        revision=row.id, decision=CouncilDecision(row.protocol, row.decision_date.isoformat()),
        mandatory=frozenset(doc.mandatory),
        entries=tuple((c, e) for c, entries in doc.sites.items() for e in entries))


def check_school_policy(db: Session, doc: PolicyDocument) -> None:
    """Refuse a school policy that weakens the baseline for a mandatory category."""
    baseline = current_baseline(db)
    if not baseline.mandatory:
        return
    why = (f"the district baseline (revision {baseline.revision}, decision "
           f"{baseline.decision.protocol} of {baseline.decision.date}) makes it mandatory")
    # A category the school itself calls optional is still mandatory: merge_into adds it.
    students = {g.id for g in doc.groups if g.kind is GroupKind.STUDENT}
    for group in doc.groups:
        if group.id not in students:
            continue
        for cid in group.categories.allow:
            if cid in baseline.mandatory:
                raise MandatoryCategoryAllowed(
                    f"student group {group.id!r} may not allow the category {cid!r}: {why}",
                    hint="remove it from the group's `allow:` list")
    allowed = [(entry, "every group") for entry in doc.sites.allow]
    allowed += [(entry, f"student group {g.id!r}") for g in doc.groups if g.id in students
                for entry in g.sites.allow]
    for entry, scope in allowed:
        hit = baseline.blocked_entry(entry)
        if hit is not None:
            raise MandatoryCategoryAllowed(
                f"the site {entry} may not be allowed for {scope}: the district baseline lists "
                f"{hit[1]} in the mandatory category {hit[0]!r} (revision {baseline.revision}, "
                f"decision {baseline.decision.protocol} of {baseline.decision.date})",
                hint="remove it from `allow:`; ask the district to review its list if it is "
                     "wrong")


def merge_into(snapshot: Snapshot, baseline: Baseline,
               index: CategoryLookup | None = None) -> Snapshot:
    """The school's snapshot with the baseline on top, and the blocklist index chained last.

    The baseline's categories join the mandatory set and its entries the category lists: the
    engine blocks them for students at step 1, before any school rule.
    """
    lookup = snapshot.categories
    if baseline.entries:
        district_index = InMemoryCategoryIndex(
            (category, entry, baseline.source) for category, entry in baseline.entries)
        lookup = chain_lookups(district_index, lookup)
    if index is not None:
        lookup = chain_lookups(lookup, index)
    return replace(snapshot, categories=lookup, mandatory=snapshot.mandatory | baseline.mandatory,
                   _clients={})
