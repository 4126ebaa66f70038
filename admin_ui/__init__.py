"""The web admin (Flask). For now a read-only view of the policy and a "what would happen" check;
accounts, roles and editing arrive with the admin issue."""

from __future__ import annotations

from typing import Any

from flask import Flask


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """App factory. ``test_config`` (or the runner) gives ``DATABASE_URL`` and/or ``ENGINE``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(SECRET_KEY="dev", DATABASE_URL="sqlite:///kalkan.db",
                            DEFAULT_GROUP="guests")
    if test_config is not None:
        app.config.update(test_config)

    from admin_ui import db, status

    db.init_app(app)
    app.register_blueprint(status.bp)
    return app
