"""The schools of a district: one PostgreSQL schema per school, named for its school_id.

Every school-scoped row (policy, people, sessions, logs, alerts) is in its school's schema, so
all of kalkan's code runs unchanged for a school of a district: the connection's
``search_path`` names the schema. The district's own tables stay in ``public``.
"""

from __future__ import annotations

import re

from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from district.models import DISTRICT_SCHEMA, DistrictSchool
from policies.database import migrate, open_engine, session_factory, utcnow
from policies.errors import KalkanError

SCHOOL_ID = re.compile(r"^[a-z0-9_-]{1,56}$")
CONNECT_TIMEOUT = 3  # seconds: an unreachable district must not stall a gateway's start


def schema_for(school_id: str) -> str:
    """``bishkek-61`` → ``school_bishkek_61`` (a plain identifier: no quoting anywhere)."""
    if not SCHOOL_ID.match(school_id):
        raise KalkanError(f"{school_id!r} is not a school id",
                          hint="use lowercase Latin letters, digits, '-' and '_' (at most 56)")
    return "school_" + school_id.replace("-", "_")


def school_database_url(district_url: str, school_id: str) -> str:
    """The district URL with this school's schema as the search path."""
    url = make_url(district_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    url = url.update_query_dict({"options": f"-csearch_path={schema_for(school_id)}",
                                 "connect_timeout": str(CONNECT_TIMEOUT)})
    return url.render_as_string(hide_password=False)


def district_database_url(district_url: str) -> str:
    url = make_url(district_url).update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
    return url.render_as_string(hide_password=False)


def open_district(district_url: str) -> Engine:
    """The district database at its own schema, migrated (the district tables)."""
    engine = open_engine(district_database_url(district_url))
    if engine.dialect.name != "postgresql":
        raise KalkanError("a district database must be PostgreSQL",
                          hint="give a postgresql+psycopg:// URL")
    migrate(engine)
    return engine


def add_school(district: Engine, school_id: str, name: str) -> DistrictSchool:
    """Create the school's schema, migrate it, and register it; an existing school is kept."""
    from gateway.bootstrap import ensure_policy
    from gateway.config import Config

    schema = schema_for(school_id)
    with session_factory(district)() as db:
        known = db.get(DistrictSchool, school_id)
        if known is None and db.scalar(select(DistrictSchool).where(
                DistrictSchool.schema_name == schema)) is not None:
            raise KalkanError(f"school id {school_id!r} clashes with another school's schema "
                              f"{schema}", hint="choose a school id that differs in more than "
                              "'-' and '_'")
        db.execute(text(f"CREATE SCHEMA IF NOT EXISTS {schema}"))
        if known is None:
            known = DistrictSchool(id=school_id, name=name, schema_name=schema,
                                   created_at=utcnow())
            db.add(known)
        db.commit()
    school_engine = open_engine(school_database_url(district.url.render_as_string(False),
                                                    school_id))
    try:
        migrate(school_engine)
        with session_factory(school_engine)() as db:
            ensure_policy(db, Config(school_id=school_id))
    finally:
        school_engine.dispose()
    return known


def adopt_single_school(district: Engine, school_id: str, name: str) -> DistrictSchool:
    """Move a single-school PostgreSQL database's tables (in ``public``) into the schema of
    ``school_id``: the school's data stays as it was, and ``public`` becomes the district's."""
    from district.models import BaselineRevision

    schema = schema_for(school_id)
    district_tables = {DistrictSchool.__tablename__, BaselineRevision.__tablename__}
    with district.begin() as conn:
        tables = [t for t in inspect(conn).get_table_names(schema=DISTRICT_SCHEMA)
                  if t not in district_tables]
        if "policy_revisions" not in tables:
            raise KalkanError("there is no single-school database in this database to adopt",
                              hint="use `kalkan district add-school` for a new school")
        conn.execute(text(f"CREATE SCHEMA {schema}"))
        for table in tables:  # indexes, constraints and owned sequences move along
            conn.execute(text(f'ALTER TABLE {DISTRICT_SCHEMA}."{table}" SET SCHEMA {schema}'))
    migrate(district)  # the district tables, now that public is the district's alone
    with session_factory(district)() as db:
        school = DistrictSchool(id=school_id, name=name, schema_name=schema, created_at=utcnow())
        db.add(school)
        db.commit()
    return school


def list_schools(db: Session) -> list[DistrictSchool]:
    return list(db.scalars(select(DistrictSchool).order_by(DistrictSchool.id)))
