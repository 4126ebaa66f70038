"""The district's own tables. They live in the district schema (``public``) of the district
database; a school's schema holds the school tables only (migration 0008 skips them there).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from policies.models import Base

DISTRICT_SCHEMA = "public"  # PostgreSQL's default schema: the district URL as given lands here


class DistrictSchool(Base):
    """One school of the district; its rows are in the PostgreSQL schema ``schema_name``."""

    __tablename__ = "district_schools"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # kalkan.yaml school_id
    name: Mapped[str] = mapped_column(String(200))
    schema_name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class BaselineRevision(Base):
    """One published state of the district baseline; the newest one is in force everywhere."""

    __tablename__ = "district_baselines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    author: Mapped[str] = mapped_column(String(200))
    protocol: Mapped[str] = mapped_column(String(64))  # the district's decision it implements
    decision_date: Mapped[dt.date] = mapped_column(Date)
    comment: Mapped[str] = mapped_column(Text, default="")
    document: Mapped[str] = mapped_column(Text)  # the baseline YAML as published
    diff: Mapped[str] = mapped_column(Text, default="")  # unified diff from the previous one
