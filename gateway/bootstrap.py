"""Getting a process to a usable database: migrate, and seed the default policy once."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from blocklists.live import LiveIndex
from blocklists.progress import Progress
from blocklists.sources import ensure_bundled_sources
from blocklists.update import index_path
from blocklists.update import update as update_blocklists
from gateway.config import Config
from policies.database import migrate, open_engine, session_factory
from policies.decision import CouncilDecision
from policies.defaults import default_policy_data
from policies.document import render_document
from policies.engine import Engine
from policies.errors import KalkanError
from policies.revisions import import_policy, latest_revision

log = logging.getLogger(__name__)


def open_database(config: Config, *, upgrade: bool = True) -> sessionmaker[Session]:
    """Open the configured database, migrating its schema to the newest first.

    With ``upgrade`` (every process's first open), a damaged SQLite file is first replaced
    by the last good backup (gateway/database_check.py): never a policy from a broken file.
    """
    if upgrade:
        from gateway.database_check import ensure_sound_database

        ensure_sound_database(config)
    engine = open_engine(config.database_url)
    if upgrade:
        try:
            migrate(engine)
        except OperationalError as exc:
            if config.district.url:  # a school of a district filters on with its saved policy
                log.warning("district database unreachable (%s); not migrating now", exc.orig)
                return session_factory(engine)
            raise KalkanError(f"cannot open the database {config.database_url}: {exc.orig}",
                              hint="check `database.url` in kalkan.yaml and that the data "
                                   "directory is writable") from None
    return session_factory(engine)


def open_category_index(config: Config) -> LiveIndex:
    """The blocklist index of this installation, reopened by the engine's watcher on update."""
    return LiveIndex(index_path(config.data_dir))


def open_engine_for(config: Config, sessions: sessionmaker[Session], *,
                    watch: bool = False) -> Engine:
    """The engine every gateway process uses: the policy from the database and the index."""
    index = open_category_index(config)
    if config.district.url:
        from district.offline import open_district_engine

        engine = open_district_engine(sessions, school_id=config.school_id,
                                      data_dir=config.data_dir,
                                      default_group=config.policy.default_group,
                                      categories=index)
    else:
        engine = Engine.from_database(sessions, default_group=config.policy.default_group,
                                      categories=index)
    if watch:
        engine.watch(config.policy.reload_interval, also=index.maybe_reload)
        # Devices pinned by MAC: this process follows their addresses itself (gateway/identity).
        from gateway.identity.watcher import start_address_watcher

        start_address_watcher(engine, config.identity)
    elif config.identity.enabled:
        # A one-off answer (`kalkan check`): the addresses as they are now, as the gateway sees.
        from gateway.identity.watcher import reader_for

        engine.set_addresses(reader_for(config.identity).read().macs)
    return engine


def ensure_blocklists(db: Session, config: Config, *, progress: Progress | None = None) -> bool:
    """Register the bundled lists and build the index if there is none yet; True if built."""
    ensure_bundled_sources(db)
    if index_path(config.data_dir).exists():
        return False
    update_blocklists(db, config.data_dir, progress=progress,
                      timeout=config.blocklists.download_timeout,
                      max_bytes=config.blocklists.max_download_mb << 20)
    return True


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
