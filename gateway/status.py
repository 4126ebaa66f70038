"""``kalkan status``: one screen that says whether the gateway is filtering and what it lost.

It reads what the running processes write to ``data_dir/status/`` (the DNS resolver's
counters, each event writer's counts) and the database; it never talks to the processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from blocklists.index import open_index
from blocklists.sources import list_sources
from blocklists.update import index_path
from gateway.config import Config
from gateway.health.services import read_status_file
from policies.database import read_version
from policies.revisions import latest_revision


@dataclass
class GatewayStatus:
    policy: dict[str, Any]
    index: dict[str, Any] | None
    dns: dict[str, Any] | None
    writers: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_errors: dict[str, str] = field(default_factory=dict)

    @property
    def events_dropped(self) -> int:
        """Events lost before they reached the database or the journal: a queue was full."""
        return sum(w.get("queue_dropped", 0) for w in self.writers.values())


def read_status(config: Config, db: Session) -> GatewayStatus:
    status_dir = config.status_directory
    revision = latest_revision(db)
    policy = {"version": read_version(db), "revision": revision.id if revision else None,
              "protocol": revision.protocol if revision else None,
              "decision_date": str(revision.decision_date) if revision else None}
    index = None
    path = index_path(config.data_dir)
    if path.exists():
        try:
            with open_index(path, verify=False) as opened:
                st = opened.stats
            index = {"names": st.domains, "built_at": st.built_at, "size": st.file_size}
        except Exception as exc:  # a broken index is itself a status to show
            index = {"error": str(exc)}
    writers = {}
    for file in sorted(status_dir.glob("events-*.json")):
        data = read_status_file(file)
        if data is not None:
            writers[file.stem.removeprefix("events-")] = data
    errors = {s.name: s.last_error for s in list_sources(db) if s.last_error}
    return GatewayStatus(policy, index, read_status_file(status_dir / "dns.json"), writers, errors)


def render_status(status: GatewayStatus) -> list[str]:
    p = status.policy
    lines = [f"policy: revision {p['revision']} (council protocol No {p['protocol']} of "
             f"{p['decision_date']}), state version {p['version']}"]
    if status.index is None:
        lines.append("blocklist index: none yet — run `kalkan blocklists update`")
    elif "error" in status.index:
        lines.append(f"blocklist index: BROKEN — {status.index['error']}")
    else:
        i = status.index
        lines.append(f"blocklist index: {i['names']:,} names, {i['size'] / 1e6:.1f} MB, "
                     f"built {i['built_at'][:16].replace('T', ' ')} UTC")
    for name, error in status.source_errors.items():
        lines.append(f"  list {name}: last update failed — {error.splitlines()[0]}")
    dns = status.dns
    if dns is None:
        lines.append("dns: not running (no status file)")
    else:
        c = dns.get("counters", {})
        state = "NOT RUNNING (status is old)" if dns["stale"] else "running"
        lines.append(f"dns: {state} on {', '.join(dns.get('listen', []))}: "
                     f"{c.get('queries', 0):,} queries, {c.get('blocked', 0):,} blocked, "
                     f"{c.get('cache_hits', 0):,} cache hits, {c.get('servfail', 0):,} SERVFAIL, "
                     f"{c.get('rate_limited_clients', 0):,} clients rate-limited")
        for u in dns.get("upstreams", []):
            health = "up" if u.get("up") else "DOWN"
            lines.append(f"  upstream {u.get('upstream')}: {health}, {u.get('srtt_ms')} ms, "
                         f"{u.get('errors', 0)} errors")
        events = dns.get("events", {})
        lines.append(f"  events: {events.get('accepted', 0):,} queued in total, "
                     f"{events.get('dropped', 0):,} dropped (queue full)")
    for name, w in status.writers.items():
        state = " (not running)" if w["stale"] else ""
        journal = ", writing to the journal: database unavailable" if w.get("journaling") else ""
        lines.append(f"events {name}{state}: {w.get('stored', 0):,} stored, "
                     f"{w.get('counted', 0):,} counted, {w.get('journaled', 0):,} journaled, "
                     f"{w.get('queue_dropped', 0):,} dropped, {w.get('lost', 0):,} lost"
                     f"{journal}")
    return lines
