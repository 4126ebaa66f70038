"""Shared fixtures: a migrated database (SQLite, or a throw-away PostgreSQL cluster), the demo
school, and an engine on it."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from policies.database import migrate, open_engine, session_factory
from policies.demo import seed_demo
from policies.engine import Engine

BISHKEK = ZoneInfo("Asia/Bishkek")
# Wednesday 27 November 2030, 10:00 in Bishkek: a school day, inside the demo schedule, and
# in the future, so sessions opened "at the lesson" have not ended whenever the tests run.
LESSON = dt.datetime(2030, 11, 27, 10, 0, tzinfo=BISHKEK)


def to_utc_naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/kalkan.db"


def _sqlite_template(path: Path, *, seeded: bool) -> Path:
    """A migrated (and perhaps seeded) database file that tests copy instead of rebuilding."""
    engine = open_engine(f"sqlite:///{path}")
    migrate(engine)
    if seeded:
        with session_factory(engine)() as db:
            seed_demo(db)
    with engine.connect() as conn:  # everything into the main file: only it is copied
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sqlite_template(tmp_path_factory.mktemp("template") / "migrated.db", seeded=False)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _sqlite_template(tmp_path_factory.mktemp("template") / "demo.db", seeded=True)


@pytest.fixture
def sessions(sqlite_url: str, migrated_template: Path) -> sessionmaker[Session]:
    """A migrated SQLite database of the test's own (a copy: migrating each time is slow)."""
    shutil.copyfile(migrated_template, sqlite_url.removeprefix("sqlite:///"))
    return session_factory(open_engine(sqlite_url))


@pytest.fixture
def demo(sessions: sessionmaker[Session], sqlite_url: str,
         demo_template: Path) -> sessionmaker[Session]:
    """``sessions`` with the demo school seeded (copied in before the first connection)."""
    shutil.copyfile(demo_template, sqlite_url.removeprefix("sqlite:///"))
    return sessions


@pytest.fixture
def engine(demo: sessionmaker[Session]) -> Engine:
    return Engine.from_database(demo, default_group="guests")


# --- PostgreSQL: a throw-away cluster from Debian's postgresql package ------------------------

def _pg_bindir() -> Path | None:
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return None
    versions = sorted((p for p in root.iterdir() if (p / "bin" / "initdb").exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else 0)
    return versions[-1] / "bin" if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """(socket directory, port) of a fresh cluster; CI must have it, elsewhere it may skip."""
    bindir = _pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; `make test` installs Debian's postgresql")
        pytest.skip("Debian's postgresql package is not installed")
    as_root = os.geteuid() == 0
    # pytest's temporary directories are private (0700) to root, where the postgres user could
    # not reach its cluster: as root, the cluster gets its own directory, removed at the end.
    base = Path(tempfile.mkdtemp(prefix="kalkan-pg-")) if as_root else tmp_path_factory.mktemp(
        "pg")
    data, sockdir = base / "data", base / "sock"
    sockdir.mkdir()
    run_as: list[str] = []
    if as_root:  # PostgreSQL refuses to run as root
        shutil.chown(base, "postgres")
        shutil.chown(sockdir, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8"], check=True, capture_output=True)
    port = _free_port()
    subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"),
                    "-o", f"-k {sockdir} -p {port} -c listen_addresses=''", "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield str(sockdir), port
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        if as_root:
            shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: tuple[str, int]) -> str:
    """A new, empty database in the throw-away cluster for each test."""
    sockdir, port = postgres_server
    name = f"kalkan_{time.monotonic_ns()}"
    subprocess.run(["psql", "-h", sockdir, "-p", str(port), "-U", "postgres", "-c",
                    f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return f"postgresql+psycopg://postgres@/{name}?host={sockdir}&port={port}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """Run a test once on SQLite and once on PostgreSQL: the same code, the same migrations."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")
