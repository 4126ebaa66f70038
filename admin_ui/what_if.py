""""What would happen": a site asked by a client, or by a group during a lesson.

A client's question goes to the engine as it is. A group's question is put to a copy of the
current snapshot in which a lesson for that group is open in some room, asked from an address
of that room: the answer is then the group's own policy (lists, categories, mode, schedule)
as the gateway would apply it, with no session missing to hide it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

from policies.decision import Decision
from policies.engine import Engine
from policies.models import SessionMode
from policies.snapshot import SessionInfo, Snapshot

ASSUMED_SESSION = 0  # the id of the lesson a group's question assumes; no real session has it


def room_address(snap: Snapshot) -> tuple[str, str] | None:
    """(address, room) of a client in a room that is no known device, or None without rooms."""
    for prefix, rooms in snap.networks_v4:
        for base, room in rooms.items():
            for offset in range(1, min(2 ** (32 - prefix) - 1, 255)):
                ip = str(ipaddress.IPv4Address(base + offset))
                if ip not in snap.devices_by_ip and snap.client(ip).room == room:
                    return ip, room
    return None


def decide_for_group(snap: Snapshot, group_id: str, host: str, at: dt.datetime
                     ) -> Decision | None:
    """The decision for ``group_id`` asking ``host`` at ``at`` during a lesson; None if the
    group is unknown or no room has an IPv4 network to ask from."""
    where = room_address(snap)
    if group_id not in snap.groups or where is None:
        return None
    ip, room = where
    t = at.timestamp()
    lesson = SessionInfo(id=ASSUMED_SESSION, room=room, teacher="(assumed)", class_id=None,
                         group=group_id, seats=frozenset(), starts=t - 60, ends=t + 3600,
                         mode=SessionMode.NORMAL, focus=frozenset())
    assumed = dataclasses.replace(snap, sessions={**snap.sessions, room: (lesson,)},
                                  _clients={})
    return Engine(assumed).decide(ip, host, at=at)
