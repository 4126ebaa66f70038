"""A device pinned by its MAC keeps its seat and group whatever address it uses, and the
devices the router sees are recorded for the responsible person."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from conftest import LESSON
from gateway.config import IdentityConfig
from gateway.identity.models import SeenDevice
from gateway.identity.neighbours import parse_neighbours
from gateway.identity.seen import record_sightings, room_of_network, sightings, start_recorder
from gateway.identity.sources import LeaseReader
from gateway.identity.watcher import AddressWatcher
from policies.database import migrate, open_engine, session_factory, utcnow
from policies.decision import CouncilDecision
from policies.demo import demo_policy_data, seed_demo
from policies.document import render_document
from policies.engine import Engine
from policies.revisions import import_policy

MAC = "52:54:00:aa:00:05"


def pin_by_mac(db: Session, *, group: str = "teachers") -> None:
    data = demo_policy_data()
    data["devices"].append({"id": "lab1-pc05", "mac": MAC, "room": "lab1", "seat": "5",
                            "group": group})
    import_policy(db, render_document(data), file="test", author="test",
                  decision=CouncilDecision("7", "2026-11-01"))


def test_a_pinned_mac_keeps_its_group_on_a_new_lease_and_on_ipv6(demo) -> None:
    with demo() as db:
        pin_by_mac(db)
    engine = Engine.from_database(demo)
    assert engine.decide("10.10.1.150", "roblox.com", at=LESSON).group == "middle"

    assert engine.set_addresses({"10.10.1.150": MAC})
    d = engine.decide("10.10.1.150", "roblox.com", at=LESSON)
    assert (d.group, d.room, d.device) == ("teachers", "lab1", "lab1-pc05")

    # A new IPv4 lease and a rotated IPv6 privacy address: the old address is someone else's.
    engine.set_addresses({"10.10.1.151": MAC, "fd00:10:10:1:9c1e:77ff:1:2": MAC})
    assert engine.decide("10.10.1.151", "x.kg", at=LESSON).group == "teachers"
    assert engine.decide("fd00:10:10:1:9c1e:77ff:1:2", "x.kg", at=LESSON).group == "teachers"
    assert engine.decide("10.10.1.150", "x.kg", at=LESSON).group == "middle"
    assert not engine.set_addresses({"10.10.1.151": MAC, "fd00:10:10:1:9c1e:77ff:1:2": MAC})


def test_the_map_survives_a_policy_change(demo) -> None:
    with demo() as db:
        pin_by_mac(db)
    engine = Engine.from_database(demo)
    engine.set_addresses({"10.10.1.150": MAC})
    with demo() as db:
        pin_by_mac(db, group="senior")  # the council moves the device to another group
    assert engine.refresh()
    assert engine.decide("10.10.1.150", "x.kg", at=LESSON).group == "senior"


def test_the_watcher_follows_a_rewritten_lease_file(demo, tmp_path: Path) -> None:
    with demo() as db:
        pin_by_mac(db)
    engine = Engine.from_database(demo)
    leases = tmp_path / "dnsmasq.leases"
    later = int(time.time()) + 3600
    leases.write_text(f"{later} {MAC} 10.10.1.160 pc5 *\n")
    watcher = AddressWatcher(engine, LeaseReader((("dnsmasq", str(leases)),), neighbours=False))
    watcher.run_round()
    assert engine.decide("10.10.1.160", "x.kg", at=LESSON).group == "teachers"
    leases.write_text(f"{later} {MAC} 10.10.1.161 pc5 *\n{later} garbled\n")
    watcher.run_round()
    assert engine.decide("10.10.1.161", "x.kg", at=LESSON).group == "teachers"
    assert engine.decide("10.10.1.160", "x.kg", at=LESSON).group == "middle"
    assert watcher.last is not None and watcher.last.skipped == 1


def test_devices_seen_are_recorded_in_batches(any_db_url: str, tmp_path: Path) -> None:
    bind = open_engine(any_db_url)
    migrate(bind)
    sessions: sessionmaker[Session] = session_factory(bind)
    with sessions() as db:
        seed_demo(db)
    engine = Engine.from_database(sessions)
    leases = tmp_path / "dnsmasq.leases"
    later = int(time.time()) + 3600
    leases.write_text(f"{later} {MAC} 10.10.1.160 pc5 *\n"
                      f"{later} 52:54:00:aa:00:06 10.10.2.7 lab2-pc7 *\n")
    neighbours = json.dumps([
        {"dst": "fd00:10:10:1:1:2:3:4", "lladdr": MAC, "state": ["STALE"]},
        {"dst": "fe80::1", "lladdr": MAC, "state": ["STALE"]},
        {"dst": "203.0.113.1", "lladdr": "02:00:00:00:00:01", "state": ["REACHABLE"]}])
    reader = LeaseReader((("dnsmasq", str(leases)),),
                         read_neighbour_table=lambda: parse_neighbours(neighbours))
    seen = sightings(reader.read(), room_of_network(engine))
    then = utcnow() - dt.timedelta(hours=1)
    with sessions() as db:
        assert record_sightings(db, seen, then) == 2
    with sessions() as db:
        rows = {r.mac: r for r in db.scalars(select(SeenDevice))}
    # The uplink's router (in no room, no lease) is not a school computer.
    assert set(rows) == {MAC, "52:54:00:aa:00:06"}
    pc5 = rows[MAC]
    assert (pc5.ipv4, pc5.ipv6, pc5.hostname, pc5.room_id) == (
        "10.10.1.160", "fd00:10:10:1:1:2:3:4", "pc5", "lab1")
    assert rows["52:54:00:aa:00:06"].room_id == "lab2"

    # The PC gets a new lease: one update, first_seen kept.
    leases.write_text(f"{later} {MAC} 10.10.1.161 pc5 *\n")
    seen = sightings(reader.read(), room_of_network(engine))
    with sessions() as db:
        assert record_sightings(db, seen) == 1
        row = db.get(SeenDevice, MAC)
        assert row.ipv4 == "10.10.1.161" and row.first_seen == then and row.last_seen > then
        assert record_sightings(db, seen) == 0  # nothing moved: nothing written
    bind.dispose()


def test_the_recorder_writes_what_the_leases_show(demo, tmp_path: Path) -> None:
    leases = tmp_path / "dnsmasq.leases"
    leases.write_text(f"{int(time.time()) + 3600} {MAC} 10.10.2.40 lab2-pc40 *\n")
    config = IdentityConfig(leases=[f"dnsmasq:{leases}"], neighbours=False, record_interval=1)
    recorder = start_recorder(demo, Engine.from_database(demo), config)
    assert recorder is not None
    try:
        deadline = time.monotonic() + 5
        row = None
        while row is None and time.monotonic() < deadline:
            time.sleep(0.1)
            with demo() as db:
                row = db.get(SeenDevice, MAC)
    finally:
        recorder.stop()
    assert row is not None and (row.ipv4, row.hostname, row.room_id) == (
        "10.10.2.40", "lab2-pc40", "lab2")
    assert start_recorder(demo, Engine.from_database(demo),
                          IdentityConfig(enabled=False)) is None
