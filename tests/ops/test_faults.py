"""What happens at schools, with the whole gateway running as real processes on loopback:
a dead uplink, a dead upstream resolver, a full disk. Each test asserts what a student, a
teacher or the responsible person would notice."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from pipeline_harness import free_port

pytest_plugins = ["tests.ops.ops_harness"]  # fixtures: start_gateway, upstreams, origin


def ask(gateway, name: str, timeout: float = 5.0) -> tuple[dns.message.Message, float]:
    """The gateway's answer to ``name`` (A) and how long it took."""
    started = time.monotonic()
    answer = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1",
                           port=gateway.dns_port, timeout=timeout)
    return answer, time.monotonic() - started


def addresses(answer: dns.message.Message) -> list[str]:
    return [rr.address for rrset in answer.answer for rr in rrset]


@pytest.mark.slow
def test_a_dead_uplink_serves_cached_names_refuses_unknown_ones_fast_and_says_no_internet(
        start_gateway, upstreams, origin) -> None:
    gateway = start_gateway([u.address for u in upstreams])
    answer, _ = ask(gateway, "lib.example.kg")
    assert addresses(answer) == ["192.0.2.1"]  # looked up while the internet worked
    code, page = gateway.browse(f"http://localhost:{origin.port}/")
    assert (code, page) == (200, "hello from the origin")

    for upstream in upstreams:  # the uplink dies: nothing comes back from outside
        upstream.silent = True
    time.sleep(1.2)  # the cached answer (TTL clamped to 1 s) has expired

    # DNS: the name looked up before still resolves (a stale answer, RFC 8767).
    answer, took = ask(gateway, "lib.example.kg")
    assert addresses(answer) == ["192.0.2.1"] and answer.answer[0].ttl == 30
    assert took < 2.0  # the upstreams had until 1.8 s to answer
    answer, took = ask(gateway, "lib.example.kg")  # now it is known they are down: at once
    assert addresses(answer) == ["192.0.2.1"] and took < 0.5
    # A name never seen: SERVFAIL within 2 s, so the browser gives up instead of hanging.
    for name in ("never-seen.example.kg", "other.example.kg"):
        answer, took = ask(gateway, name)
        assert answer.rcode() == dns.rcode.SERVFAIL and took < 2.0, (name, took)

    # The proxy: the student sees "no internet" in their language, not a browser error.
    dead = free_port()  # nothing listens there: the site cannot be reached
    code, page = gateway.browse(f"http://localhost:{dead}/lesson", language="ru")
    assert code == 502
    assert "Нет подключения к интернету" in page and "школьное подключение" in page
    code, page = gateway.browse(f"http://localhost:{dead}/", language="ky")
    assert code == 502 and 'lang="ky"' in page and "Интернет байланышы жок" in page

    # The responsible person: `kalkan status` says the internet is down, and since when.
    def down() -> str:
        out = gateway.kalkan("status").stdout
        assert re.search(r"internet: DOWN since \d\d:\d\d", out), out
        assert out.count(": DOWN,") == 2, out  # both upstreams
        return out
    gateway.wait_for(down, timeout=20)
    assert gateway.metrics()["kalkan_uplink_up"] == 0

    for upstream in upstreams:  # the provider fixes the line
        upstream.silent = False

    def back() -> str:
        out = gateway.kalkan("status").stdout
        assert "internet: up" in out, out
        assert re.search(r"outages: 1, [\d.]+ min in all \(\d\d:\d\d–\d\d:\d\d\)", out), out
        return out
    gateway.wait_for(back, timeout=30)
    answer, _ = ask(gateway, "fresh.example.kg")
    assert addresses(answer) == ["192.0.2.1"]


@pytest.mark.slow
def test_a_dead_upstream_resolver_is_failed_over_and_shown_down(start_gateway,
                                                                  upstreams) -> None:
    gateway = start_gateway([u.address for u in upstreams])
    first, second = upstreams
    first.silent = True  # the first configured resolver, the one asked first, dies

    slowest = 0.0
    for i in range(20):  # every name still resolves, through the other resolver
        answer, took = ask(gateway, f"site{i}.example.kg")
        assert addresses(answer) == ["192.0.2.1"], i
        slowest = max(slowest, took)
    assert slowest < 2.0
    assert second.queries >= 20

    def shown() -> str:
        out = gateway.kalkan("status").stdout
        assert f"upstream {first.address}: DOWN" in out, out
        assert f"upstream {second.address}: up" in out, out
        assert "DNS upstreams: 1 of 2 answering" in out and "internet: up" in out, out
        return out
    gateway.wait_for(shown, timeout=20)
    metrics = gateway.metrics()
    assert metrics[f'kalkan_dns_upstream_up{{upstream="{first.address}"}}'] == 0
    assert metrics[f'kalkan_dns_upstream_up{{upstream="{second.address}"}}'] == 1
    assert metrics["kalkan_uplink_up"] == 1  # one resolver down is no outage
    assert gateway.kalkan("health").returncode == 0


@contextlib.contextmanager
def tiny_disk(path: Path, size: str):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8); the full-disk case is untested")
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> None:
    """Write a file until the disk has no room left."""
    with open(disk / "filler", "wb", buffering=0) as out:
        for size in (65536, 4096, 512):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)


@pytest.mark.slow
def test_a_full_disk_keeps_filtering_and_counts_and_shows_the_lost_records(
        start_gateway, upstreams, origin, tmp_path) -> None:
    with tiny_disk(tmp_path / "disk", "2m") as disk:
        gateway = start_gateway([u.address for u in upstreams], data_dir=disk / "kalkan")
        fill(disk)

        blocked = 0
        for i in range(200):  # filtering goes on: every blocked name gets the block page
            answer, _ = ask(gateway, f"p{i}.pornhub.com")
            blocked += addresses(answer) == ["127.0.0.1"]
        assert blocked == 200
        answer, _ = ask(gateway, "lib.example.kg")
        assert addresses(answer) == ["192.0.2.1"]
        code, page = gateway.browse(f"http://localhost:{origin.port}/")
        assert (code, page) == (200, "hello from the origin")

        # What could not be kept anywhere is counted, and `kalkan status` shows it.
        def lost() -> int:
            writer = gateway.status_json()["writers"]["dns-0"]
            assert writer["lost"] > 0 and writer["taken"] >= 200, writer
            assert not writer["stale"]
            return writer["lost"]
        count = gateway.wait_for(lost, timeout=20)
        out = gateway.kalkan("status").stdout
        assert re.search(r"events dns-0: .*, ([\d,]+) lost", out), out
        shown = int(re.search(r"events dns-0: .*, ([\d,]+) lost", out)[1].replace(",", ""))
        assert shown >= count
        today = int(re.search(r"access records lost today: (\d+)", out)[1])
        assert today >= count
        # ... and /metrics, for the district's monitoring.
        metrics = gateway.metrics()
        assert metrics['kalkan_events_lost_total{process="dns-0"}'] >= count
        assert metrics['kalkan_up{service="monitor"}'] == 1  # monitoring outlives the disk
        (disk / "filler").unlink()
        gateway.stop()
