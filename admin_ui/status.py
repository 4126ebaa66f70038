"""Status: the school, the policy revision in force, sessions, and "what would happen?"."""

from __future__ import annotations

import datetime as dt
import ipaddress

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin_ui.access import READERS, public, roles, signed_in
from admin_ui.db import get_db, get_engine
from admin_ui.what_if import ASSUMED_SESSION, decide_for_group
from policies.errors import KalkanError
from policies.models import Group, Role, Room, School
from policies.revisions import export_policy, history, latest_revision
from policies.sessions import list_sessions
from policies.validation import check_host

bp = Blueprint("status", __name__)


@bp.get("/")
@signed_in
def index() -> Response | str:
    if current_user.role == Role.TEACHER:
        return redirect(url_for("lessons.index"))  # a teacher's home is their lessons
    db = get_db()
    return render_template(
        "status/index.html", school=db.scalar(select(School).limit(1)),
        revision=latest_revision(db),
        groups=db.scalars(select(Group).order_by(Group.position)).all(),
        rooms=db.scalars(select(Room).order_by(Room.position)).all(),
        sessions=list_sessions(db))


@bp.get("/check")
@signed_in
def check() -> str:
    """A site and either a client address (the engine as it is) or a group (during a lesson)."""
    host = request.args.get("host", "").strip()
    client = request.args.get("client", "").strip()
    group = request.args.get("group", "").strip()
    at_text = request.args.get("at", "").strip()
    engine = get_engine()
    decision = error = None
    lines: list[str] = []
    if host and (client or group):
        try:
            check_host(host)
            at = _moment(at_text, engine.snapshot.timezone)
            if client:
                ipaddress.ip_address(client.strip("[]"))
                decision = engine.decide(client, host, at=at)
                lines = decision.explain().splitlines()
            else:
                decision = decide_for_group(engine.snapshot, group, host,
                                            at or dt.datetime.now(dt.UTC))
                if decision is None:
                    error = _("The group %(group)s is unknown, or no room has a network to ask "
                              "from.", group=group)
                else:  # the assumed lesson's room and address would only confuse
                    lines = [line for line in decision.explain().splitlines()[1:]
                             if line != f"Session: #{ASSUMED_SESSION}"]
        except KalkanError as exc:
            error = str(exc)
        except BadMoment:
            error = _("%(at)s is not a date and time.", at=repr(at_text))
        except ValueError:  # the engine would take it for an unknown client, and mislead
            error = _("%(client)s is not an IP address; give one such as 10.10.1.101",
                      client=repr(client))
    groups = get_db().scalars(select(Group).order_by(Group.position)).all()
    return render_template("status/check.html", host=host, client=client, group=group,
                           at=at_text, groups=groups, decision=decision, lines=lines,
                           error=error)


class BadMoment(ValueError):
    pass


def _moment(text: str, school_zone: dt.tzinfo) -> dt.datetime | None:
    """``2026-11-25T10:00`` (what a datetime-local field sends) in school time; empty: now."""
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadMoment(text) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=school_zone)


@bp.get("/policy")
@roles(*READERS)
def policy() -> str:
    db = get_db()
    return render_template("status/policy.html", text=export_policy(db), revisions=history(db))


@bp.get("/healthz")
@public
def healthz() -> dict[str, object]:
    snap = get_engine().snapshot
    return {"status": "ok", "policy_version": snap.version, "revision": snap.revision}
