"""Saving a policy change made outside the council pages (rooms, the review queue) the way the
council pages do: with the council decision from the form, as a new revision, audit-logged."""

from __future__ import annotations

from typing import Any

from flask import flash, request
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import Session

from admin_ui.audit import record
from admin_ui.models import AuditAction
from admin_ui.policy_changes import save_policy
from policies.decision import CouncilDecision
from policies.errors import KalkanError
from policies.revisions import ImportResult


class MissingDecision(KalkanError):
    """The form did not name the council decision (protocol number and date)."""


def decision_from_form() -> tuple[CouncilDecision, str]:
    form = request.form
    protocol, date = form.get("protocol", "").strip(), form.get("decision_date", "").strip()
    if not protocol or not date:
        raise MissingDecision(_("Give the council decision: its protocol number and date."))
    return CouncilDecision(protocol, date), form.get("comment", "").strip()


def base_revision() -> int | None:
    text = request.form.get("base_revision", "")
    return int(text) if text.isdigit() else None


def save_decided(db: Session, new: dict[str, Any], *, what: str,
                 action: AuditAction = AuditAction.POLICY_SAVED,
                 **detail: Any) -> ImportResult | None:
    """Save ``new`` as a revision with the form's decision; commits and flashes. Raises
    :class:`KalkanError` (the caller rolls back and shows it) when it cannot be saved."""
    decision, comment = decision_from_form()
    result = save_policy(db, new, decision=decision, author=current_user.username,
                         comment=comment, base_revision=base_revision())
    if result is None:
        flash(_("Nothing changed, so no revision was made."))
        return None
    rev = result.revision
    record(db, action, f"revision {rev.id}", protocol=rev.protocol,
           decision_date=rev.decision_date.isoformat(), what=what, **detail)
    db.commit()
    flash(_("Saved as revision %(n)d (council protocol No %(protocol)s of %(date)s).",
            n=rev.id, protocol=rev.protocol, date=rev.decision_date.isoformat()))
    return result
