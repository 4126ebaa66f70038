"""Alembic environment: kalkan passes its own engine in ``config.attributes``."""

from alembic import context
from sqlalchemy import create_engine

import admin_ui.models  # noqa: F401 - registers its tables on Base.metadata
import blocklists.models  # noqa: F401 - registers its tables on Base.metadata
import district.models  # noqa: F401 - the district tables (district/)
import gateway.alerts.models
import gateway.events.models
import gateway.health.models
import gateway.identity.models  # devices seen on the network
import gateway.notify.models  # and the notification outbox
import gateway.notify.preferences  # noqa: F401 - who wants which notifications
import policies.timetable  # noqa: F401 - the weekly lessons
from policies.models import Base

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # plain `alembic` command line, e.g. `alembic revision --autogenerate`
    engine = create_engine(config.get_main_option("sqlalchemy.url"))

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
