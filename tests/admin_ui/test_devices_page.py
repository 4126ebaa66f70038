"""The devices page: what the router has seen, and pinning a computer by its MAC to a room,
seat or group — a policy revision with the council decision, like every council page."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from admin_ui.models import AuditAction, AuditEntry
from conftest import LESSON
from gateway.identity.models import SeenDevice
from policies.engine import Engine
from policies.revisions import history
from tests.admin_ui.test_languages import TRANSLATED, english_left

pytest_plugins = ["tests.admin_ui.admin_client"]  # fixtures: school, app, staff

NEW_PC = "52:54:00:aa:00:05"
DECISION = {"protocol": "12", "decision_date": "2026-11-20"}
XSS = "<script>alert(1)</script>"


@pytest.fixture
def seen(school):
    now = dt.datetime(2030, 11, 27, 4, 0)
    with school() as db:
        db.add_all([
            SeenDevice(mac=NEW_PC, ipv4="10.10.1.150", ipv6="fd00:10:10:1:3c1a::1",
                       hostname=XSS, room_id="lab1", first_seen=now - dt.timedelta(days=1),
                       last_seen=now),
            SeenDevice(mac="52:54:00:10:01:01", ipv4="10.10.1.101", hostname="pc01",
                       room_id="lab1", first_seen=now, last_seen=now),
        ])
        db.commit()
    return school


def decide(school, addresses: dict[str, str], client: str):
    engine = Engine.from_database(school, default_group="guests")
    engine.set_addresses(addresses)
    return engine.decide(client, "x.kg", at=LESSON)


def test_seen_devices_are_listed_with_their_pins_and_escaped(seen, staff):
    html = staff("admin").page("/devices/", lang="en")
    assert NEW_PC in html and "10.10.1.150" in html and "fd00:10:10:1:3c1a::1" in html
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<code>lab1-pc01</code>" in html  # the demo device pinned by MAC and IP
    assert "Not assigned yet: 1" in html
    new_only = staff("admin").page("/devices/", show="new", lang="en")
    assert NEW_PC in new_only and "52:54:00:10:01:01" not in new_only
    assert "lab1-teacher" in html  # pinned by IP only, never seen: listed apart


def test_pinning_a_seen_device_makes_a_revision_and_the_engine_follows_its_mac(seen, staff):
    admin = staff("admin")
    form = admin.page(f"/devices/{NEW_PC}", lang="en")
    assert 'value="script-alert-1-script"' in form  # a name made from the lease's hostname
    assert decide(seen, {"10.10.1.150": NEW_PC}, "10.10.1.150").group == "middle"
    response = admin.post(f"/devices/{NEW_PC}", {"device_id": "lab1-pc05", "room": "lab1",
                                                 "seat": "5", "group": "teachers",
                                                 "base_revision": "1", **DECISION})
    assert response.status_code == 302, response.get_data(as_text=True)
    with seen() as db:
        revs = history(db)
        assert revs[-1].protocol == "12" and f"mac: {NEW_PC}" in revs[-1].document
        entry = db.scalar(select(AuditEntry).where(
            AuditEntry.action == AuditAction.POLICY_SAVED.value))
        assert entry.actor == "admin" and entry.detail["what"] == f"device {NEW_PC} pinned"
    # A new lease, then an IPv6 address: the pin follows the MAC.
    for address in ("10.10.1.177", "fd00:10:10:1:9c1e::2"):
        d = decide(seen, {address: NEW_PC}, address)
        assert (d.group, d.device, d.room) == ("teachers", "lab1-pc05", "lab1")
    assert "Pinned as lab1-pc05" in admin.page(f"/devices/{NEW_PC}", lang="en")

    response = admin.post(f"/devices/{NEW_PC}/unpin", {"base_revision": str(revs[-1].id),
                                                       **DECISION})
    assert response.status_code == 302
    assert decide(seen, {"10.10.1.177": NEW_PC}, "10.10.1.177").group == "middle"


def test_a_pin_needs_the_council_decision_a_good_name_and_an_editor(seen, staff):
    admin = staff("admin")
    admin.post("/language", lang="en", next="/")
    refused = admin.post(f"/devices/{NEW_PC}", device_id="lab1-pc05", room="lab1")
    assert refused.status_code == 400
    assert "protocol number and date" in refused.get_data(as_text=True)
    bad = admin.post(f"/devices/{NEW_PC}", {"device_id": "<b>PC 5</b>", **DECISION})
    assert bad.status_code == 400 and "&lt;b&gt;PC 5&lt;/b&gt;" in bad.get_data(as_text=True)
    taken = admin.post(f"/devices/{NEW_PC}", {"device_id": "lab1-pc01", **DECISION})
    assert taken.status_code == 400 and "already a device named" in taken.get_data(
        as_text=True)
    unknown = admin.post(f"/devices/{NEW_PC}", {"device_id": "pc5", "group": "nobody",
                                                **DECISION})
    assert unknown.status_code == 400 and "unknown group" in unknown.get_data(as_text=True)
    with seen() as db:
        assert len(history(db)) == 1  # nothing was saved

    csrf_less = admin.client.post(f"/devices/{NEW_PC}", data={"device_id": "pc5", **DECISION})
    assert csrf_less.status_code == 400
    assert staff("aigul").post(f"/devices/{NEW_PC}", {"device_id": "pc5",
                                                      **DECISION}).status_code == 403
    assert staff("aigul").get("/devices/").status_code == 403
    director = staff("director").page(f"/devices/{NEW_PC}", lang="en")
    assert "Save as a new revision" not in director and "disabled" in director
    assert staff("director").post(f"/devices/{NEW_PC}", {"device_id": "pc5",
                                                         **DECISION}).status_code == 403
    assert admin.get("/devices/not-a-mac").status_code == 404


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_devices_pages_speak_the_language(seen, staff, lang):
    admin = staff("admin")
    for url, params in (("/devices/", {}), ("/devices/", {"show": "new"}),
                        (f"/devices/{NEW_PC}", {}), ("/devices/52:54:00:10:01:01", {})):
        html = admin.page(url, lang=lang, **params)
        assert f'<html lang="{lang}">' in html
        assert english_left(html, lang) == [], f"{url} in {lang}"
