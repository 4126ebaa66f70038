"""Getting a process to a usable database: migrate, and seed the default policy once."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Config
from policies.database import migrate, open_engine, session_factory
from policies.decision import CouncilDecision
from policies.defaults import default_policy_data
from policies.document import render_document
from policies.errors import KalkanError
from policies.revisions import import_policy, latest_revision


def open_database(config: Config, *, upgrade: bool = True) -> sessionmaker[Session]:
    """Open the configured database, migrating its schema to the newest first."""
    engine = open_engine(config.database_url)
    if upgrade:
        try:
            migrate(engine)
        except OperationalError as exc:
            raise KalkanError(f"cannot open the database {config.database_url}: {exc.orig}",
                              hint="check `database.url` in kalkan.yaml and that the data "
                                   "directory is writable") from None
    return session_factory(engine)


def ensure_policy(db: Session, config: Config) -> int:
    """The current revision number, importing the shipped default policy if there is none."""
    latest = latest_revision(db)
    if latest is not None:
        return latest.id
    data = default_policy_data(school_id=config.school_id, language=config.language)
    result = import_policy(
        db, render_document(data), file="default policy",
        decision=CouncilDecision("0", dt.date.today().isoformat()), author="kalkan",
        comment="default policy shipped with kalkan; import the council's own to replace it")
    return result.revision.id
