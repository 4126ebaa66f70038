"""One SQLAlchemy session per request on ``g``, closed at teardown (as in Flask's tutorial)."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from policies.database import open_engine, session_factory
from policies.engine import Engine


def get_db() -> Session:
    if "db" not in g:
        factory = current_app.extensions.get("kalkan.sessions")
        if factory is None:
            factory = session_factory(open_engine(current_app.config["DATABASE_URL"]))
            current_app.extensions["kalkan.sessions"] = factory
        g.db = factory()
    return g.db


def get_engine() -> Engine:
    """The running gateway's engine when there is one, else one compiled for this app."""
    engine = current_app.config.get("ENGINE") or current_app.extensions.get("kalkan.engine")
    if engine is None:
        get_db()
        engine = Engine.from_database(current_app.extensions["kalkan.sessions"],
                                      default_group=current_app.config["DEFAULT_GROUP"])
        current_app.extensions["kalkan.engine"] = engine
    else:
        engine.refresh()
    return engine


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app: Flask) -> None:
    if "SESSIONS" in app.config:
        app.extensions["kalkan.sessions"] = app.config["SESSIONS"]
    app.teardown_appcontext(close_db)
