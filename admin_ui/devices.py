"""Devices: what the router has seen on the network, and pinning one to a room, seat or group.

The list comes from ``devices_seen`` (written by :mod:`gateway.identity.seen`). A pin is an
entry in the policy document's ``devices`` (by MAC), so it is saved like every council page:
:func:`admin_ui.policy_changes.save_policy` makes a revision with the council decision, and the
gateway enforces it within the same ~2 s as any policy change. Why not a lighter path: a pin
decides which group's policy a computer gets, which is what the council decides (regulations
2.6, 2.13); a pin made without a decision would be a way round the council.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from admin_ui.access import EDITORS, READERS, roles
from admin_ui.audit import record
from admin_ui.db import get_db
from admin_ui.models import AuditAction
from admin_ui.policy_changes import save_policy
from gateway.identity.leases import normalise_mac
from gateway.identity.models import SeenDevice
from policies.decision import CouncilDecision
from policies.errors import KalkanError, PolicyError
from policies.revisions import ImportResult, export_data, latest_revision

bp = Blueprint("devices", __name__, url_prefix="/devices")

PAGE_SIZE = 500  # a school has a few hundred computers; the newest first
SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


# --- the policy document's devices, as plain data ----------------------------------------------

def device_by_mac(data: dict[str, Any], mac: str) -> dict[str, Any] | None:
    for device in data.get("devices", []):
        if device.get("mac") == mac:
            return device
    return None


def suggested_id(mac: str, hostname: str | None, taken: set[str]) -> str:
    """A device id from the hostname the PC gave its DHCP server, else from its MAC."""
    base = re.sub(r"[^a-z0-9_-]+", "-", (hostname or "").lower()).strip("-_")[:50]
    if not base or not SLUG.match(base):
        base = "pc-" + mac.replace(":", "")[-6:]
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def pin_device(data: dict[str, Any], mac: str, *, device_id: str, room: str | None,
               seat: str | None, group: str | None) -> dict[str, Any]:
    """A copy of ``data`` with the device of ``mac`` pinned (added, or changed in place)."""
    if not SLUG.match(device_id):
        raise PolicyError(_("%(id)s is not a device name.", id=repr(device_id)),
                          hint=_("use small Latin letters, digits, - and _, e.g. lab1-pc05"))
    new = copy.deepcopy(data)
    devices = new.setdefault("devices", [])
    entry = device_by_mac(new, mac)
    if any(d["id"] == device_id and d is not entry for d in devices):
        raise PolicyError(_("There is already a device named %(id)s.", id=device_id),
                          hint=_("choose another name"))
    if entry is None:
        entry = {"mac": mac}
        devices.append(entry)
    entry["id"] = device_id
    for key, value in (("room", room), ("seat", seat), ("group", group)):
        if value:
            entry[key] = value
        else:
            entry.pop(key, None)
    return new


def unpin_device(data: dict[str, Any], mac: str) -> dict[str, Any]:
    new = copy.deepcopy(data)
    new["devices"] = [d for d in new.get("devices", []) if d.get("mac") != mac]
    return new


# --- pages ---------------------------------------------------------------------------------------

def _mac_or_404(text: str) -> str:
    mac = normalise_mac(text)
    if mac is None:
        abort(404)
    return mac


@bp.get("/")
@roles(*READERS)
def index() -> str:
    db = get_db()
    data = export_data(db)
    show = request.args.get("show", "")
    seen = db.scalars(select(SeenDevice).order_by(SeenDevice.last_seen.desc())
                      .limit(PAGE_SIZE)).all()
    pins = {d["mac"]: d for d in data.get("devices", []) if d.get("mac")}
    rows = [(s, pins.get(s.mac)) for s in seen]
    if show == "new":
        rows = [(s, pin) for s, pin in rows if pin is None]
    seen_addresses = {a for s in seen for a in (s.mac, s.ipv4, s.ipv6) if a}
    # Pinned in the policy but not seen (yet): a typo in a MAC shows here.
    unseen = [d for d in data.get("devices", [])
              if not {d.get("mac"), d.get("ip")} & seen_addresses]
    return render_template("devices/index.html", rows=rows, unseen=unseen, show=show,
                           rooms={r["id"]: r for r in data.get("rooms", [])},
                           unassigned=sum(1 for s in seen if s.mac not in pins))


def _edit_context(mac: str, data: dict[str, Any]) -> dict[str, Any]:
    db = get_db()
    seen = db.get(SeenDevice, mac)
    pin = device_by_mac(data, mac)
    taken = {d["id"] for d in data.get("devices", [])}
    latest = latest_revision(db)
    return {"mac": mac, "seen": seen, "pin": pin, "data": data,
            "suggested": pin["id"] if pin else suggested_id(
                mac, seen.hostname if seen else None, taken),
            "base_revision": latest.id if latest else "", "form": request.form}


@bp.get("/<mac>")
@roles(*READERS)
def device(mac: str) -> str:
    mac = _mac_or_404(mac)
    return render_template("devices/device.html", **_edit_context(mac, export_data(get_db())))


@bp.post("/<mac>")
@roles(*EDITORS)
def pin(mac: str) -> Response | tuple[str, int]:
    mac = _mac_or_404(mac)
    data = export_data(get_db())
    form = request.form
    try:
        new = pin_device(data, mac, device_id=form.get("device_id", "").strip(),
                         room=form.get("room") or None, seat=form.get("seat", "").strip() or None,
                         group=form.get("group") or None)
    except KalkanError as exc:
        return _refused(mac, data, exc)
    return _save(mac, data, new, f"device {mac} pinned")


@bp.post("/<mac>/unpin")
@roles(*EDITORS)
def unpin(mac: str) -> Response | tuple[str, int]:
    mac = _mac_or_404(mac)
    data = export_data(get_db())
    if device_by_mac(data, mac) is None:
        abort(404)
    return _save(mac, data, unpin_device(data, mac), f"device {mac} unpinned")


def _save(mac: str, data: dict[str, Any], new: dict[str, Any],
          what: str) -> Response | tuple[str, int]:
    db = get_db()
    form = request.form
    decision = CouncilDecision(form.get("protocol", "").strip(), form.get("decision_date", ""))
    if not decision.protocol or not decision.date:
        return _refused(mac, data, KalkanError(
            _("Give the council decision: its protocol number and date.")))
    base = form.get("base_revision", "")
    try:
        result = save_policy(db, new, decision=decision, author=current_user.username,
                             comment=form.get("comment", "").strip() or what,
                             base_revision=int(base) if base.isdigit() else None)
    except KalkanError as exc:
        return _refused(mac, data, exc)
    _saved(result, what)
    return redirect(url_for("devices.device", mac=mac))


def _saved(result: ImportResult | None, what: str) -> None:
    if result is None:
        flash(_("Nothing changed, so no revision was made."))
        return
    rev = result.revision
    db = get_db()
    record(db, AuditAction.POLICY_SAVED, f"revision {rev.id}", protocol=rev.protocol,
           decision_date=rev.decision_date.isoformat(), what=what)
    db.commit()
    flash(_("Saved as revision %(n)d (council protocol No %(protocol)s of %(date)s).",
            n=rev.id, protocol=rev.protocol, date=rev.decision_date.isoformat()))


def _refused(mac: str, data: dict[str, Any], exc: KalkanError) -> tuple[str, int]:
    get_db().rollback()
    return render_template("devices/device.html", error=str(exc),
                           **_edit_context(mac, data)), 400
