"""Is each service alive? Judged by the freshness of the status file it writes every few
seconds: what /healthz/dns, /healthz/proxy and ``kalkan health`` answer."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config import Config

STALE_AFTER = 30.0  # seconds: a status file older than this means its process is not running
SERVICES = ("dns", "proxy", "monitor")


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    name: str
    up: bool
    age: float | None  # seconds since its newest status file was written; None: no file
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.name, "up": self.up,
                "age_seconds": None if self.age is None else round(self.age, 1),
                "detail": self.detail}


def stale_after(data: dict[str, Any]) -> float:
    """How old a status file may be: 30 s, or longer for a process that writes less often
    (the monitor writes once per sample, every ``daily_status.sample_seconds``)."""
    try:
        interval = float(data.get("interval") or 0.0)
    except (TypeError, ValueError):
        interval = 0.0
    return max(STALE_AFTER, 2.5 * interval)


def read_status_file(path: Path) -> dict[str, Any] | None:
    """A status file with ``stale`` added, or None if it is missing or half-written."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    data["stale"] = time.time() - float(data.get("updated", 0)) > stale_after(data)
    return data


def _files(status_dir: Path, name: str) -> list[Path]:
    if name == "dns":
        return [status_dir / "dns.json", *sorted(status_dir.glob("dns-worker-*.json"))]
    if name == "proxy":  # each proxy process's event writer reports every 3 s
        return sorted(status_dir.glob("events-proxy-*.json"))
    return [status_dir / f"{name}.json"]


def service_health(config: Config, name: str, *, now: float | None = None) -> ServiceHealth:
    """The health of ``name`` (one of :data:`SERVICES`)."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    now = time.time() if now is None else now
    newest, limit = None, STALE_AFTER
    for path in _files(config.status_directory, name):
        try:
            data = json.loads(path.read_text())
            updated = float(data.get("updated", 0))
        except (OSError, ValueError, AttributeError):
            continue
        if newest is None or updated > newest:
            newest, limit = updated, stale_after(data)
    if newest is None:
        return ServiceHealth(name, False, None, f"no status file in {config.status_directory}")
    age = max(0.0, now - newest)
    if age > limit:
        return ServiceHealth(name, False, age, f"status is {age:.0f} s old: not running")
    return ServiceHealth(name, True, age, "running")


def all_services(config: Config) -> list[ServiceHealth]:
    return [service_health(config, name) for name in SERVICES]
