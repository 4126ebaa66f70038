"""Rooms and their networks (regulations 2.1, 2.5): which CIDR is which room, and the group a
room's computers belong to by default.

Rooms are part of the council's policy document, so a change here is a policy change: it asks
for the council decision and becomes a revision (the history shows it), through the same
path as the council pages. Overlapping networks are refused by the policy's own validation,
with the room that already has the addresses.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.wrappers import Response

from admin_ui.access import EDITORS, READERS, roles
from admin_ui.db import get_db
from admin_ui.decided_save import save_decided
from admin_ui.policy_changes import parse_site_lines
from policies.errors import KalkanError
from policies.revisions import export_data, latest_revision
from policies.timetable import Lesson

bp = Blueprint("rooms", __name__, url_prefix="/rooms")

ROOM_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def set_room(data: dict[str, Any], room_id: str, *, name: str, default_group: str,
             networks: list[str]) -> dict[str, Any]:
    """A copy of ``data`` with the room added or changed (networks replaced)."""
    if not ROOM_ID.match(room_id):
        raise KalkanError(_("%(id)s is not a usable room id: use lowercase Latin letters, "
                            "digits, '-' and '_', e.g. lab2.", id=room_id or "''"))
    if not name.strip():
        raise KalkanError(_("Give the room a name, e.g. Computer lab 2."))
    if default_group not in {g["id"] for g in data["groups"]}:
        raise KalkanError(_("Choose the room's default group."))
    new = copy.deepcopy(data)
    entry = {"id": room_id, "name": name.strip(), "default_group": default_group,
             "networks": list(networks)}
    for i, room in enumerate(new["rooms"]):
        if room["id"] == room_id:
            new["rooms"][i] = entry
            break
    else:
        new["rooms"].append(entry)
    return new


def remove_room(data: dict[str, Any], room_id: str) -> dict[str, Any]:
    new = copy.deepcopy(data)
    new["rooms"] = [r for r in new["rooms"] if r["id"] != room_id]
    for device in new.get("devices", []):
        if device.get("room") == room_id:
            raise KalkanError(_("Device %(d)s is in this room: move it to another room first.",
                                d=device["id"]))
    return new


def _page(data: dict[str, Any], status: int = 200, **extra: Any) -> tuple[str, int]:
    latest = latest_revision(get_db())
    return render_template("people/rooms.html", data=data, form=request.form,
                           base_revision=latest.id if latest else "", **extra), status


@bp.get("/")
@roles(*READERS)
def index() -> tuple[str, int]:
    return _page(export_data(get_db()))


@bp.post("/")
@roles(*EDITORS)
def save() -> Response | tuple[str, int]:
    db = get_db()
    data = export_data(db)
    form = request.form
    room_id = form.get("id", "").strip()
    try:
        if form.get("remove"):
            if room_id not in {r["id"] for r in data["rooms"]}:
                abort(404)
            lessons = db.scalar(select(func.count(Lesson.id)).where(Lesson.room_id == room_id))
            if lessons:  # removing the room would silently take its lessons with it
                raise KalkanError(_("The timetable has %(n)d lessons in this room: move or "
                                    "remove them first.", n=lessons))
            new = remove_room(data, room_id)
            what = f"room {room_id} removed"
        else:
            new = set_room(data, room_id, name=form.get("name", ""),
                           default_group=form.get("default_group", ""),
                           networks=parse_site_lines(form.get("networks", "")))
            what = f"room {room_id}"
        save_decided(db, new, what=what)
    except KalkanError as exc:
        db.rollback()
        return _page(data, 400, error=str(exc), editing=room_id)
    return redirect(url_for("rooms.index"))
