"""``devices_seen``: every MAC the router has seen, for the responsible person to assign."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from policies.models import Base


class SeenDevice(Base):
    """A MAC seen on the school network, its last addresses, and when.

    Not part of the policy: pinning a device to a seat or a group is a policy change (the
    ``devices`` of the document); this table only says what is out there.
    """

    __tablename__ = "devices_seen"
    mac: Mapped[str] = mapped_column(String(17), primary_key=True)
    ipv4: Mapped[str | None] = mapped_column(String(15))
    ipv6: Mapped[str | None] = mapped_column(String(45))
    hostname: Mapped[str | None] = mapped_column(String(253))
    room_id: Mapped[str | None] = mapped_column(String(64))  # by network; no foreign key:
    # rooms come and go with policy revisions, and what was seen stays seen
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
