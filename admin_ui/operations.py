"""For monitoring: Prometheus ``/metrics`` and ``/healthz/dns``, ``/healthz/proxy``.

Access rule: the views are public to the sign-in check (a scraper has no account), but each
answers only a client in ``metrics.networks`` (default: the router itself) or one that sends
``Authorization: Bearer <token>`` with the token of ``metrics.token_file``; anyone else gets
404, so the endpoints do not even show they exist. The kalkan ``Config`` comes from the app's
``KALKAN_CONFIG`` (the runner sets it).
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, request
from werkzeug.wrappers import Response

from admin_ui.access import public
from gateway.config import Config
from gateway.health.services import service_health
from gateway.metrics import CONTENT_TYPE, render_metrics

bp = Blueprint("operations", __name__)


def _not_found() -> None:
    # A plain answer: the admin's error page reads the database, which may be what is broken.
    abort(Response("not found\n", 404, content_type="text/plain"))


def _config() -> Config:
    config = current_app.config.get("KALKAN_CONFIG")
    if config is None:
        _not_found()
    return config


def _token(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _scraper_allowed(config: Config) -> bool:
    token = _token(config.metrics.token_file)
    sent = request.headers.get("Authorization", "")
    if token and sent.startswith("Bearer ") and hmac.compare_digest(sent[7:].strip(), token):
        return True
    try:
        client = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return False
    return any(client in network for network in config.metrics.allowed_networks)


def _guarded() -> Config:
    config = _config()
    if not _scraper_allowed(config):
        _not_found()
    return config


@bp.get("/metrics")
@public
def metrics() -> Response:
    return Response(render_metrics(_guarded()), content_type=CONTENT_TYPE)


@bp.get("/healthz/<any(dns, proxy, monitor):service>")
@public
def healthz_service(service: str) -> tuple[Response, int]:
    health = service_health(_guarded(), service)
    return jsonify(health.as_dict()), 200 if health.up else 503
