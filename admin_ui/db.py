"""One SQLAlchemy session per request on ``g``, closed at teardown (as in Flask's tutorial)."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session, sessionmaker

from policies.database import open_engine, session_factory
from policies.engine import Engine


def get_db() -> Session:
    """The database of the school on screen (in a district, ``g.school``: see auth.py)."""
    if "db" not in g:
        if current_app.config.get("DISTRICT_URL"):
            g.db = district_sessions(g.get("school") or DISTRICT_HOME)()
            return g.db
        factory = current_app.extensions.get("kalkan.sessions")
        if factory is None:
            factory = session_factory(open_engine(current_app.config["DATABASE_URL"]))
            current_app.extensions["kalkan.sessions"] = factory
        g.db = factory()
    return g.db


def get_sessions() -> sessionmaker[Session]:
    """The session factory of the school on screen, for work outside this request (a cache
    renewed in the background, an update thread)."""
    if current_app.config.get("DISTRICT_URL"):
        return district_sessions(g.get("school") or DISTRICT_HOME)
    get_db()  # makes the factory when the app has none yet
    return current_app.extensions["kalkan.sessions"]


DISTRICT_HOME = "district"  # where district staff accounts live: the district's own schema


def district_sessions(school: str) -> sessionmaker[Session]:
    """A school's schema of the district database, or the district's own (``DISTRICT_HOME``);
    each school's rows are reachable only through its own search path."""
    from district.schools import district_database_url, school_database_url

    cache = current_app.extensions.setdefault("kalkan.district_sessions", {})
    if school not in cache:
        url = current_app.config["DISTRICT_URL"]
        cache[school] = session_factory(open_engine(
            district_database_url(url) if school == DISTRICT_HOME
            else school_database_url(url, school)))
    return cache[school]


def get_home_db() -> Session:
    """Where the signed-in account lives: the school's database, or for district staff the
    district's, whichever school they are looking at."""
    if not current_app.config.get("DISTRICT_URL") or g.get("home") == g.get("school"):
        return get_db()
    if "home_db" not in g:
        g.home_db = district_sessions(g.get("home") or DISTRICT_HOME)()
    return g.home_db


def get_engine() -> Engine:
    """The running gateway's engine when there is one, else one compiled for this app."""
    if current_app.config.get("DISTRICT_URL"):
        return _district_engine(g.get("school") or DISTRICT_HOME)
    engine = current_app.config.get("ENGINE") or current_app.extensions.get("kalkan.engine")
    if engine is None:
        get_db()
        engine = Engine.from_database(current_app.extensions["kalkan.sessions"],
                                      default_group=current_app.config["DEFAULT_GROUP"])
        current_app.extensions["kalkan.engine"] = engine
    else:
        engine.refresh()
    return engine


def _district_engine(school: str) -> Engine:
    """The school's policy as its gateway enforces it: its own rules and the baseline."""
    engines = current_app.extensions.setdefault("kalkan.district_engines", {})
    engine = engines.get(school)
    if engine is not None:
        engine.refresh()
        return engine
    from district.baseline import baseline_version, current_baseline, merge_into
    from policies.database import read_version
    from policies.snapshot import compile_snapshot

    sessions = district_sessions(school)
    group = current_app.config["DEFAULT_GROUP"]

    def compile_now():  # type: ignore[no-untyped-def]
        with sessions() as db:
            return merge_into(compile_snapshot(db, default_group=group), current_baseline(db))

    def version_now() -> tuple[int, int]:
        with sessions() as db:
            return read_version(db), baseline_version(db)

    engine = engines[school] = Engine(compile_now(), compile_now, version_now, version_now())
    return engine


def close_db(_exc: BaseException | None = None) -> None:
    for name in ("db", "home_db"):
        db = g.pop(name, None)
        if db is not None:
            db.close()


def init_app(app: Flask) -> None:
    if "SESSIONS" in app.config:
        app.extensions["kalkan.sessions"] = app.config["SESSIONS"]
    app.teardown_appcontext(close_db)
