"""Blocklist sources as database rows: where each list comes from and how its last update went."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from policies.models import Base


class BlocklistSource(Base):
    """One list kalkan reads: a URL or a local path, its format, and its last update."""

    __tablename__ = "blocklist_sources"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    location: Mapped[str] = mapped_column(String(2000))  # https://…, file path, or bundled:NAME
    format: Mapped[str] = mapped_column(String(16))  # ut1, hosts, adblock, plain, csv
    category: Mapped[str | None] = mapped_column(String(64))  # for single-category formats
    mapping: Mapped[str | None] = mapped_column(String(2000))  # mapping YAML; None = default
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_sha256: Mapped[str | None] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict[str, Any]] = mapped_column(default=dict)  # counts of the last import
