"""The JSON API: what the pages do, for a district or an e-diary system (issue 9, part 6).

Every call but the OpenAPI document needs ``Authorization: Bearer kalkan_…``: a key the
responsible person made for a staff account, acting with that account's role
(:mod:`admin_ui.access` checks it; cookies are not accepted here). The same logic as the
pages runs behind each call, and every change is in the audit log with the key's name.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from flask_login import current_user

from admin_ui.access import READERS, SUPERVISORS, public, roles, signed_in
from admin_ui.audit import record
from admin_ui.db import get_db, get_engine
from admin_ui.lesson_requests import PendingSite, approve, open_sessions_of, pending_for, refuse
from admin_ui.lessons import classes_for
from admin_ui.models import AuditAction
from admin_ui.what_if import decide_for_group
from policies.decision import Decision
from policies.errors import KalkanError
from policies.models import InternetSession, Role, SessionMode, StaffUser
from policies.revisions import export_policy, history
from policies.sessions import close_session, extend_session, list_sessions, open_session
from policies.validation import check_host

bp = Blueprint("api", __name__, url_prefix="/api/v1")

JSON = dict[str, Any]


def _problem(message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify(error=message), status


def _body() -> JSON:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _me() -> StaffUser:
    user = get_db().get(StaffUser, current_user.id)
    if user is None:
        abort(401)
    return user


def _session_json(s: InternetSession) -> JSON:
    return {"id": s.id, "room": s.room_id, "class": s.class_id, "teacher": s.teacher.username,
            "mode": s.mode, "starts_at": _utc(s.starts_at), "ends_at": _utc(s.ends_at),
            "focus_sites": list(s.focus_sites or []),
            "allowed_sites": list(s.allowed_sites or [])}


def _decision_json(d: Decision, *, explanation: list[str]) -> JSON:
    return {"action": d.action.value, "reason": d.reason.value, "host": d.host,
            "group": d.group, "room": d.room, "category": d.category, "rule": d.rule,
            "council": {"protocol": d.council.protocol, "date": d.council.date}
            if d.council else None, "revision": d.revision, "explanation": explanation}


def _pending_json(p: PendingSite) -> JSON:
    return {"id": p.first.id, "session": p.session.id, "host": p.host,
            "requests": [{"id": r.id, "client": r.client, "device": r.device_id,
                          "message": r.message, "created_at": _utc(r.created_at)}
                         for r in p.requests]}


def _utc(naive: dt.datetime) -> str:
    return naive.replace(tzinfo=dt.UTC).isoformat()


@bp.get("/openapi.json")
@public
def openapi() -> Response:
    return jsonify(OPENAPI)


@bp.get("/check")
@signed_in
def check() -> Response | tuple[Response, int]:
    """``host`` and ``client`` (the engine as it is), or ``host`` and ``group`` (in a lesson)."""
    host, client, group = (request.args.get(k, "").strip() for k in ("host", "client", "group"))
    engine = get_engine()
    try:
        check_host(host)
        if client:
            ipaddress.ip_address(client.strip("[]"))
            d = engine.decide(client, host)
            return jsonify(_decision_json(d, explanation=d.explain().splitlines()))
        if not group:
            return _problem("give `client` (an IP address) or `group`")
        d = decide_for_group(engine.snapshot, group, host, dt.datetime.now(dt.UTC))
    except KalkanError as exc:
        return _problem(str(exc))
    except ValueError:
        return _problem(f"{client!r} is not an IP address")
    if d is None:
        return _problem(f"no group {group!r}, or no room to ask from", 404)
    return jsonify(_decision_json(d, explanation=d.explain().splitlines()[1:]))


@bp.get("/policy")
@roles(*READERS)
def policy() -> Response:
    return Response(export_policy(get_db()), mimetype="application/yaml")


@bp.get("/revisions")
@roles(*READERS)
def revisions() -> Response:
    return jsonify([{"id": r.id, "created_at": _utc(r.created_at), "author": r.author,
                     "protocol": r.protocol, "decision_date": r.decision_date.isoformat(),
                     "comment": r.comment} for r in history(get_db())])


@bp.get("/sessions")
@signed_in
def sessions() -> Response:
    """Open sessions: a teacher's own, or every one for the other roles."""
    db = get_db()
    rows = (open_sessions_of(db, current_user.id) if current_user.role == Role.TEACHER
            else list_sessions(db))
    return jsonify([_session_json(s) for s in rows])


@bp.post("/sessions", endpoint="open")
@roles(*SUPERVISORS)
def open_() -> tuple[Response, int]:
    db = get_db()
    me = _me()
    body = _body()
    class_id = str(body.get("class", ""))
    if class_id not in {c.id for c in classes_for(me)}:
        return _problem(f"{class_id!r} is not one of your classes", 422)
    focus = [str(s) for s in body.get("focus_sites") or []]
    try:
        mode = SessionMode(body.get("mode", "focus" if focus else "normal"))
        minutes = int(body.get("minutes", 45))
        session = open_session(db, room=str(body.get("room", "")), teacher=me.username,
                               class_id=class_id, minutes=minutes, mode=mode, focus=focus,
                               source="api")
    except (KalkanError, ValueError) as exc:
        db.rollback()
        return _problem(str(exc))
    record(db, AuditAction.SESSION_OPENED, f"session #{session.id}", room=session.room_id,
           class_id=class_id, minutes=minutes, mode=session.mode, focus=session.focus_sites)
    db.commit()
    return jsonify(_session_json(session)), 201


def _own(session_id: int) -> None:
    session = get_db().get(InternetSession, session_id)
    if session is None or session.teacher_id != current_user.id:
        abort(404)


@bp.post("/sessions/<int:session_id>/extend")
@roles(*SUPERVISORS)
def extend(session_id: int) -> Response | tuple[Response, int]:
    db = get_db()
    _own(session_id)
    try:
        minutes = int(_body().get("minutes", 10))
        session = extend_session(db, session_id, minutes)
    except (KalkanError, ValueError) as exc:
        db.rollback()
        return _problem(str(exc))
    record(db, AuditAction.SESSION_EXTENDED, f"session #{session_id}", minutes=minutes)
    db.commit()
    return jsonify(_session_json(session))


@bp.post("/sessions/<int:session_id>/close")
@roles(*SUPERVISORS)
def close(session_id: int) -> Response | tuple[Response, int]:
    db = get_db()
    _own(session_id)
    try:
        session = close_session(db, session_id)
    except KalkanError as exc:
        db.rollback()
        return _problem(str(exc))
    record(db, AuditAction.SESSION_CLOSED, f"session #{session_id}")
    db.commit()
    return jsonify(_session_json(session))


@bp.get("/requests")
@roles(*SUPERVISORS)
def requests() -> Response:
    """Students' open requests in the token account's open sessions, one entry per site."""
    return jsonify([_pending_json(p) for p in pending_for(get_db(), current_user.id)])


@bp.post("/requests/<int:request_id>/approve")
@roles(*SUPERVISORS)
def approve_request(request_id: int) -> Response | tuple[Response, int]:
    db = get_db()
    snapshot = get_engine().snapshot
    try:
        answered = approve(db, request_id, teacher=_me(), categories=snapshot.categories,
                           mandatory=snapshot.mandatory)
    except KalkanError as exc:
        db.rollback()
        return _problem(str(exc), 404 if "no request" in exc.message else 409)
    record(db, AuditAction.REQUEST_APPROVED, answered[0].host, session=answered[0].session_id,
           requests=[r.id for r in answered])
    db.commit()
    return jsonify(answered=[r.id for r in answered], host=answered[0].host)


@bp.post("/requests/<int:request_id>/refuse")
@roles(*SUPERVISORS)
def refuse_request(request_id: int) -> Response | tuple[Response, int]:
    db = get_db()
    try:
        answered = refuse(db, request_id, teacher=_me(), answer=_body().get("answer"))
    except KalkanError as exc:
        db.rollback()
        return _problem(str(exc), 404 if "no request" in exc.message else 409)
    record(db, AuditAction.REQUEST_REFUSED, answered[0].host, session=answered[0].session_id,
           requests=[r.id for r in answered])
    db.commit()
    return jsonify(answered=[r.id for r in answered], host=answered[0].host)


def _op(summary: str, roles_text: str, *, params: list[JSON] | None = None,
        body: JSON | None = None, response: str = "JSON") -> JSON:
    op: JSON = {"summary": summary, "description": f"Roles: {roles_text}.",
                "responses": {"200": {"description": response},
                              "401": {"description": "no valid API token"},
                              "403": {"description": "the account's role may not"}}}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return op


def _q(name: str, description: str, required: bool = False) -> JSON:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "string"}}


def _path_id(name: str) -> JSON:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


SUPERVISING = "teacher, council, responsible"
EVERY_ROLE = "every role"
OPENAPI: JSON = {
    "openapi": "3.1.0",
    "info": {"title": "kalkan admin API", "version": "1",
             "description": "Sessions, students' requests, checks and the policy of one "
                            "kalkan school gateway."},
    "servers": [{"url": "/api/v1"}],
    "components": {"securitySchemes": {"token": {
        "type": "http", "scheme": "bearer",
        "description": "A key made by the responsible person on the account's page "
                       "(kalkan_…); it acts with that account's role."}}},
    "security": [{"token": []}],
    "paths": {
        "/openapi.json": {"get": {**_op("This document", "anyone, no token"), "security": []}},
        "/check": {"get": _op("What would happen: a site for a client, or for a group during "
                              "a lesson", EVERY_ROLE,
                              params=[_q("host", "site, e.g. lib.kg", True),
                                      _q("client", "IP address of the asking machine"),
                                      _q("group", "group id, when no client is given")])},
        "/policy": {"get": _op("The policy in force as a YAML document",
                               "council, responsible, director", response="YAML")},
        "/revisions": {"get": _op("Every revision with its council decision",
                                  "council, responsible, director")},
        "/sessions": {
            "get": _op("Open sessions (a teacher's own, or all)", EVERY_ROLE),
            "post": _op("Open a session for one of the account's classes in a room",
                        SUPERVISING, body={"type": "object", "required": ["class", "room"],
                                           "properties": {
                                               "class": {"type": "string"},
                                               "room": {"type": "string"},
                                               "minutes": {"type": "integer", "default": 45},
                                               "mode": {"enum": ["normal", "focus"]},
                                               "focus_sites": {"type": "array",
                                                               "items": {"type": "string"}}}})},
        "/sessions/{session_id}/extend": {"post": {
            **_op("Extend one of the account's sessions", SUPERVISING,
                  body={"type": "object", "properties": {"minutes": {"type": "integer"}}}),
            "parameters": [_path_id("session_id")]}},
        "/sessions/{session_id}/close": {"post": {
            **_op("Close one of the account's sessions", SUPERVISING),
            "parameters": [_path_id("session_id")]}},
        "/requests": {"get": _op("Students' open requests in the account's sessions",
                                 SUPERVISING)},
        "/requests/{request_id}/approve": {"post": {
            **_op("Allow the site for that session only (never a mandatory category)",
                  SUPERVISING), "parameters": [_path_id("request_id")]}},
        "/requests/{request_id}/refuse": {"post": {
            **_op("Refuse the request", SUPERVISING,
                  body={"type": "object", "properties": {"answer": {"type": "string"}}}),
            "parameters": [_path_id("request_id")]}},
    },
}
