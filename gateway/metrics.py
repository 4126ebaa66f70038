"""Prometheus text exposition (format 0.0.4), written from the status files.

Every DNS worker and event writer already writes its counters to the status directory every
few seconds; reading those files is multi-process-safe by construction and costs the hot path
nothing, so kalkan does without prometheus_client. The admin serves this at ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.health.services import SERVICES, read_status_file, service_health

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_DNS_COUNTERS = {
    "queries": "DNS queries received",
    "blocked": "DNS queries answered as blocked",
    "cache_hits": "DNS answers from the cache",
    "cache_misses": "DNS queries the cache could not answer",
    "stale_answers": "expired answers served because no upstream answered (RFC 8767)",
    "servfail": "SERVFAIL answers",
    "upstream_failures": "queries no upstream resolver answered in time",
    "rate_limited": "queries refused by the per-client rate limit",
    "formerr": "malformed queries",
}
_WRITER_COUNTERS = {
    "stored": "access events stored in the database",
    "journaled": "access events written to the journal while the database was away",
    "lost": "access events that could be kept nowhere (disk full, journal limit)",
    "queue_dropped": "access events dropped because the in-memory queue was full",
}


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, str], float | int | None]]) -> None:
        rows = [(labels, value) for labels, value in samples if value is not None]
        if not rows:
            return
        self.lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels, value in rows:
            shown = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{shown}}} {float(value)!r}" if shown
                              else f"{name} {float(value)!r}")


def _latency_histogram(out: _Exposition, upstreams: list[dict[str, Any]]) -> None:
    """Each upstream's answer times, as a Prometheus histogram (cumulative buckets)."""
    from gateway.dns.upstream import LATENCY_BUCKETS

    rows: list[tuple[dict[str, str], float | int | None]] = []
    for u in upstreams:
        counts = u.get("latency_counts")
        if not counts:
            continue
        total = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=False):
            total += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            rows.append(({"upstream": u["upstream"], "le": le}, total))
    if not rows:
        return
    name = "kalkan_dns_upstream_latency_seconds"
    out.lines += [f"# HELP {name} time the upstream resolver took to answer",
                  f"# TYPE {name} histogram"]
    for labels, value in rows:
        shown = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        out.lines.append(f"{name}_bucket{{{shown}}} {float(value)!r}")
    for u in upstreams:
        if u.get("latency_counts"):
            label = f'{{upstream="{_label(u["upstream"])}"}}'
            out.lines.append(f"{name}_sum{label} {float(u.get('latency_sum', 0))!r}")
            out.lines.append(f"{name}_count{label} {float(sum(u['latency_counts']))!r}")


def render_metrics(config: Config) -> str:
    """The whole exposition for this gateway, as text."""
    out = _Exposition()
    status_dir: Path = config.status_directory
    out.family("kalkan_up", "gauge", "1 if the service wrote its status in the last 30 s",
               [({"service": name}, int(service_health(config, name).up)) for name in SERVICES])
    dns = read_status_file(status_dir / "dns.json")
    if dns is not None and not dns["stale"]:
        counters: dict[str, Any] = dns.get("counters", {})
        for key, help_text in _DNS_COUNTERS.items():
            out.family(f"kalkan_dns_{key}_total", "counter", help_text,
                       [({}, counters.get(key))])
        hits, misses = counters.get("cache_hits", 0), counters.get("cache_misses", 0)
        out.family("kalkan_dns_cache_hit_ratio", "gauge",
                   "cache hits over cache lookups since the resolver started",
                   [({}, hits / (hits + misses) if hits + misses else None)])
        events = dns.get("events", {})
        out.family("kalkan_dns_events_dropped_total", "counter",
                   "access events the resolver dropped because its queue was full",
                   [({}, events.get("dropped"))])
        ups = dns.get("upstreams", [])
        out.family("kalkan_dns_upstream_up", "gauge", "1 if the upstream resolver answers",
                   [({"upstream": u["upstream"]}, int(bool(u.get("up")))) for u in ups])
        out.family("kalkan_dns_upstream_rtt_seconds", "gauge",
                   "smoothed round-trip time of the upstream resolver",
                   [({"upstream": u["upstream"]},
                     None if u.get("srtt_ms") is None else u["srtt_ms"] / 1000) for u in ups])
        _latency_histogram(out, ups)
        out.family("kalkan_dns_upstream_answers_total", "counter", "answers from the upstream",
                   [({"upstream": u["upstream"]}, u.get("answers")) for u in ups])
        out.family("kalkan_dns_upstream_errors_total", "counter", "failures of the upstream",
                   [({"upstream": u["upstream"]}, u.get("errors")) for u in ups])
    writers = {path.stem.removeprefix("events-"): read_status_file(path)
               for path in sorted(status_dir.glob("events-*.json"))}
    for key, help_text in _WRITER_COUNTERS.items():
        out.family(f"kalkan_events_{key}_total", "counter", help_text,
                   [({"process": name}, data.get(key)) for name, data in writers.items()
                    if data is not None])
    out.family("kalkan_events_journaling", "gauge",
               "1 while the writer writes to the journal because the database is away",
               [({"process": name}, int(bool(data.get("journaling"))))
                for name, data in writers.items() if data is not None])
    monitor = read_status_file(status_dir / "monitor.json")
    if monitor is not None and not monitor["stale"]:
        up = monitor.get("uplink_up")
        out.family("kalkan_uplink_up", "gauge",
                   "1 if the internet answers, 0 during an outage (absent: not judged)",
                   [({}, None if up is None else int(up))])
        seconds = monitor.get("seconds") or 0
        for direction in ("rx", "tx"):
            value = monitor.get(f"{direction}_bytes")
            out.family(f"kalkan_uplink_{direction}_bits_per_second", "gauge",
                       f"uplink throughput ({direction}) over the last sampling interval",
                       [({}, value * 8 / seconds if value is not None and seconds else None)])
        out.family("kalkan_uplink_speed_check_mbit", "gauge", "the last speed check",
                   [({}, monitor.get("speed_mbit"))])
    return "\n".join(out.lines) + "\n"
