"""``kalkan run``: start the parts that exist, keep the policy current, say where to look."""

from __future__ import annotations

import logging

import click
from sqlalchemy.orm import Session, sessionmaker

from gateway.bootstrap import ensure_policy
from gateway.config import Config, parse_listen
from policies.engine import Engine


def run_all(config: Config, sessions: sessionmaker[Session], *,
            admin_listen: str | None = None) -> None:
    from werkzeug.serving import run_simple

    from admin_ui import create_app

    logging.basicConfig(level=config.logging.level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with sessions() as db:
        ensure_policy(db, config)
    engine = Engine.from_database(sessions, default_group=config.policy.default_group)
    engine.watch(config.policy.reload_interval)
    host, port = parse_listen(admin_listen or config.admin.listen)
    app = create_app({"SESSIONS": sessions, "ENGINE": engine,
                      "DEFAULT_GROUP": config.policy.default_group})
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"kalkan: policy revision {engine.snapshot.revision} in force "
               f"(version {engine.snapshot.version})")
    click.echo(f"kalkan: admin at http://{shown}:{port}/  (Ctrl-C to stop)")
    run_simple(host, port, app, threaded=True)
