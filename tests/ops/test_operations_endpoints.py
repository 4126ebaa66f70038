"""Operations conventions: Prometheus /metrics and /healthz/<service> on the admin (for the
router itself or a scraper with the token, nobody else), `kalkan health` for systemd, and log
lines the journal can filter by priority."""

# ruff: noqa: F811 - the fixtures imported from pipeline_harness are parameters here
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import yaml
from click.testing import CliRunner
from pipeline_harness import (  # noqa: F401  (fixtures)
    STUDENT_IP,
    TinyUpstream,
    free_port,
    pipeline_config,
    school,
)

from admin_ui import create_app
from gateway.cli import main
from gateway.dns.service import DnsService
from gateway.events.writer import start_writer
from gateway.health.services import service_health
from gateway.log_format import formatter_for


def scrape(client, path: str = "/metrics", address: str = "127.0.0.1",
           headers: dict[str, str] | None = None):
    return client.get(path, environ_base={"REMOTE_ADDR": address}, headers=headers or {})


def values(text: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def test_metrics_and_health_tell_a_scraper_what_the_resolver_does(school, tmp_path) -> None:
    upstream = TinyUpstream().start()
    token_file = tmp_path / "metrics-token"
    token_file.write_text("s3cret-token\n")
    config = pipeline_config(tmp_path, dns={"upstreams": [upstream.address]},
                             metrics={"token_file": str(token_file)})
    service = DnsService(config, school, listen=[("127.0.0.1", 0)],
                         status_path=config.status_directory / "dns.json").start_in_thread()
    writer = start_writer(config, school, service.events, process="dns-0")
    try:
        port = service.bound[0][1]
        for name in ("lib.kg", "lib.kg", "lib.kg", "pornhub.com", "bilimland.kz"):
            dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                          timeout=2, source=STUDENT_IP)
        time.sleep(3.5)  # the next status write (every 3 s) carries the counts
        app = create_app({"SESSIONS": school, "SECRET_KEY": "test", "KALKAN_CONFIG": config})
        client = app.test_client()

        answer = scrape(client)
        assert answer.status_code == 200
        assert answer.content_type == "text/plain; version=0.0.4; charset=utf-8"
        got = values(answer.get_data(as_text=True))
        assert got["kalkan_dns_queries_total"] == 5
        assert got["kalkan_dns_blocked_total"] == 1
        assert got["kalkan_dns_cache_hits_total"] == 2  # lib.kg twice more
        assert got["kalkan_dns_cache_hit_ratio"] == 2 / (2 + got["kalkan_dns_cache_misses_total"])
        up = f'upstream="{upstream.address}"'
        assert got[f"kalkan_dns_upstream_up{{{up}}}"] == 1
        answers = got[f"kalkan_dns_upstream_answers_total{{{up}}}"]
        assert got[f"kalkan_dns_upstream_latency_seconds_count{{{up}}}"] == answers >= 2
        assert got[f'kalkan_dns_upstream_latency_seconds_bucket{{{up},le="+Inf"}}'] == answers
        assert got['kalkan_up{service="dns"}'] == 1 and got['kalkan_up{service="proxy"}'] == 0
        assert got['kalkan_events_lost_total{process="dns-0"}'] == 0

        # Not from the router and without the token: nothing is there.
        assert scrape(client, address="10.10.1.101").status_code == 404
        wrong = {"Authorization": "Bearer guessed"}
        assert scrape(client, address="10.10.1.101", headers=wrong).status_code == 404
        right = {"Authorization": "Bearer s3cret-token"}
        assert scrape(client, address="10.10.1.101", headers=right).status_code == 200

        dns_health = scrape(client, "/healthz/dns")
        assert dns_health.status_code == 200 and dns_health.json["up"] is True
        proxy_health = scrape(client, "/healthz/proxy")
        assert proxy_health.status_code == 503 and proxy_health.json["up"] is False

        config_file = tmp_path / "kalkan.yaml"
        config_file.write_text(yaml.safe_dump({"data_dir": str(config.data_dir)}))
        runner = CliRunner()
        ok = runner.invoke(main, ["--config", str(config_file), "health", "dns"])
        assert ok.exit_code == 0 and "dns: ok" in ok.output
        down = runner.invoke(main, ["--config", str(config_file), "health"])
        assert down.exit_code == 1 and "proxy: DOWN" in down.output
    finally:
        writer.stop()
        service.stop_thread()
        upstream.stop()


def test_log_lines_under_systemd_carry_priority_level_and_component(tmp_path: Path) -> None:
    record = logging.LogRecord("gateway.dns.upstream", logging.WARNING, __file__, 1,
                               "upstream %s is not answering", ("9.9.9.9:53",), None)
    journal = formatter_for("auto", {"JOURNAL_STREAM": "8:1234"})
    assert journal.format(record) == ('<4>level=warning component=gateway.dns.upstream '
                                      'message="upstream 9.9.9.9:53 is not answering"')
    assert formatter_for("auto", {}).format(record).endswith(
        "WARNING gateway.dns.upstream: upstream 9.9.9.9:53 is not answering")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = formatter_for("json", {"JOURNAL_STREAM": "8:1234"}).format(record)
    assert line.startswith('<4>{"level": "warning"') and "\n" not in line
    assert "ValueError: bad" in line

    # A real `kalkan dns` started by systemd writes such lines.
    config = tmp_path / "kalkan.yaml"
    config.write_text(yaml.safe_dump({
        "data_dir": str(tmp_path / "data"),
        "dns": {"listen": [f"127.0.0.1:{free_port()}"], "upstreams": ["127.0.0.1:9"]},
        "blocklists": {"auto_update": False}}))
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())",
         "--config", str(config), "dns"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
        text=True, env={**os.environ, "JOURNAL_STREAM": "8:1234"})
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = child.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "policy revision" in line:  # the resolver is up
                break
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(10)
    ours = [line for line in lines if "component=gateway." in line]
    assert ours and "policy revision" in ours[-1], lines
    priority = {"info": "6", "warning": "4", "error": "3"}
    for line in ours:  # e.g. <4>level=warning component=gateway.dns.service message="..."
        found = re.match(r'<(\d)>level=(\w+) component=gateway\.[\w.]+ message="', line)
        assert found and priority[found[2]] == found[1], line


def test_the_monitor_counts_as_running_between_its_samples(tmp_path) -> None:
    """It writes once per sample (every minute by default), not every 3 s like the others."""
    config = pipeline_config(tmp_path)
    config.status_directory.mkdir(parents=True, exist_ok=True)
    status = config.status_directory / "monitor.json"
    now = time.time()
    status.write_text(json.dumps({"updated": now - 45, "interval": 60.0}))
    assert service_health(config, "monitor", now=now).up  # 45 s into a 60-s interval
    status.write_text(json.dumps({"updated": now - 200, "interval": 60.0}))
    assert not service_health(config, "monitor", now=now).up  # three samples missed
