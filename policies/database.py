"""Opening the database: SQLite in WAL mode by default, PostgreSQL by URL; Alembic migrations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from policies.errors import KalkanError
from policies.models import StateVersion

MIGRATIONS = Path(__file__).with_name("migrations")


def utcnow() -> dt.datetime:
    """Now as naive UTC, the form every timestamp has in the database."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def open_engine(url: str) -> Engine:
    """An SQLAlchemy engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")  # readers (gateway) never wait for a writer
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(False))
    try:
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise KalkanError(
            f"the database driver for {parsed.drivername} is not installed ({exc.name})",
            hint="install it with: pip install 'kalkan[postgresql]'",
        ) from None


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (the newest by default); safe to run at every start."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def current_schema(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def bump_version(db: Session) -> int:
    """Tell every gateway process that the policy or a session changed (inside ``db``'s commit)."""
    row = db.get(StateVersion, 1)
    if row is None:
        row = StateVersion(id=1, version=1, changed_at=utcnow())
        db.add(row)
        db.flush()
        return 1
    db.execute(update(StateVersion).where(StateVersion.id == 1).values(
        version=StateVersion.version + 1, changed_at=utcnow()))
    db.flush()
    return db.scalar(select(StateVersion.version).where(StateVersion.id == 1)) or 0


def read_version(db: Session) -> int:
    return db.scalar(select(StateVersion.version).where(StateVersion.id == 1)) or 0
