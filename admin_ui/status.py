"""Read-only status: the school, the policy revision in force, sessions, and a decision check."""

from __future__ import annotations

import ipaddress

from flask import Blueprint, render_template, request
from sqlalchemy import select

from admin_ui.db import get_db, get_engine
from policies.errors import KalkanError
from policies.models import Group, Room, School
from policies.revisions import export_policy, history, latest_revision
from policies.sessions import list_sessions
from policies.validation import check_host

bp = Blueprint("status", __name__)


@bp.get("/")
def index() -> str:
    db = get_db()
    return render_template(
        "status/index.html", school=db.scalar(select(School).limit(1)),
        revision=latest_revision(db),
        groups=db.scalars(select(Group).order_by(Group.position)).all(),
        rooms=db.scalars(select(Room).order_by(Room.position)).all(),
        sessions=list_sessions(db))


@bp.get("/check")
def check() -> str:
    host = request.args.get("host", "").strip()
    client = request.args.get("client", "").strip()
    decision = error = None
    if host and client:
        try:
            check_host(host)
            ipaddress.ip_address(client.strip("[]"))
            decision = get_engine().decide(client, host)
        except KalkanError as exc:
            error = str(exc)
        except ValueError:  # the engine would take it for an unknown client, and mislead
            error = f"{client!r} is not an IP address; give one such as 10.10.1.101"
    return render_template("status/check.html", host=host, client=client, decision=decision,
                           error=error)


@bp.get("/policy")
def policy() -> str:
    db = get_db()
    return render_template("status/policy.html", text=export_policy(db), revisions=history(db))


@bp.get("/healthz")
def healthz() -> dict[str, object]:
    snap = get_engine().snapshot
    return {"status": "ok", "policy_version": snap.version, "revision": snap.revision}
