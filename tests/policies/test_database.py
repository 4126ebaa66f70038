"""The database: one schema on SQLite and PostgreSQL, made by the migrations and nothing else."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from policies.database import (
    MIGRATIONS,
    bump_version,
    current_schema,
    migrate,
    open_engine,
    read_version,
    session_factory,
)
from policies.demo import seed_demo
from policies.models import Base, Device, SchoolClass, Student
from policies.revisions import export_policy, history


def head() -> str:
    """The newest migration."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def migrated(url: str) -> sessionmaker[Session]:
    engine = open_engine(url)
    migrate(engine)
    return session_factory(engine)


def test_migrations_create_every_table_of_the_model(any_db_url):
    engine = open_engine(any_db_url)
    assert current_schema(engine) is None
    migrate(engine)
    assert current_schema(engine) == head()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_migrating_twice_changes_nothing(any_db_url):
    sessions = migrated(any_db_url)
    with sessions() as db:
        seed_demo(db)
        before = export_policy(db)
    engine = sessions.kw["bind"]
    migrate(engine)  # every process start does this
    assert current_schema(engine) == head()
    with sessions() as db:
        assert export_policy(db) == before
        assert len(history(db)) == 1


def test_the_migration_matches_the_models(any_db_url):
    """What `alembic check` does: a migrated database and the models have no difference."""
    engine = open_engine(any_db_url)
    migrate(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_is_in_wal_mode_and_enforces_foreign_keys(sqlite_url):
    engine = open_engine(sqlite_url)
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    with session_factory(engine)() as db:
        db.add(Device(id="ghost", ip="10.9.9.9", room_id="no-such-room"))
        with pytest.raises(IntegrityError):
            db.commit()


@pytest.mark.postgres
def test_the_demo_school_is_the_same_on_sqlite_and_postgresql(sqlite_url, postgres_url):
    texts = []
    for url in (sqlite_url, postgres_url):
        sessions = migrated(url)
        with sessions() as db:
            seed_demo(db)
        with sessions() as db:
            texts.append(export_policy(db).encode("utf-8"))
            assert [c.id for c in db.query(SchoolClass).order_by(SchoolClass.id)] == sorted(
                ["1A", "2A", "3A", "4A", "5A", "6A", "7A", "7B", "8A", "9A", "10A", "11A"])
    assert b"Demo school No 1" in texts[0]
    assert texts[0] == texts[1]


def test_a_students_name_is_refused_without_recorded_consent(any_db_url):
    """Regulation 2.14–2.17: the table itself refuses a name without consent."""
    sessions = migrated(any_db_url)
    with sessions() as db:
        seed_demo(db)
    with sessions() as db:
        db.add(Student(class_id="7B", name="Named Without Consent"))
        with pytest.raises(IntegrityError):
            db.commit()
    with sessions() as db:
        db.add(Student(class_id="7B", name="Named With Consent",
                       consent_recorded_on=dt.date(2026, 9, 3), consent_reference="form 7B/9"))
        db.add(Student(class_id="7B"))  # no name: known by class and device only
        db.commit()
        names = {s.name for s in db.query(Student).filter(Student.class_id == "7B")}
    assert "Named With Consent" in names and "Named Without Consent" not in names


def test_the_state_version_grows_with_every_change(any_db_url):
    sessions = migrated(any_db_url)
    with sessions() as db:
        assert read_version(db) == 0
        assert bump_version(db) == 1
        assert bump_version(db) == 2
        db.commit()
    with sessions() as db:
        assert read_version(db) == 2
