"""Fixtures for the responsible person's pages: the demo staff reading English (their demo
languages are ky, ru and kk), so that a test can read the messages it checks."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from policies.models import StaffUser


@pytest.fixture
def english(school: sessionmaker[Session]) -> sessionmaker[Session]:
    with school() as db:
        db.execute(update(StaffUser).values(language="en"))
        db.commit()
    return school


@pytest.fixture
def admin(english, staff):  # type: ignore[no-untyped-def]
    """The responsible person, signed in, reading English."""
    return staff("admin")
