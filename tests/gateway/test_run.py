"""`kalkan run`, as `make demo` starts it: admin, DNS and proxy come up and filter together."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from gateway.config import write_default_config


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kalkan(config: Path, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c",
                           "import sys; from gateway.cli import main; sys.exit(main())",
                           "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, **kwargs)


def wait_for(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.slow
def test_kalkan_run_serves_admin_dns_and_proxy_with_the_demo_school(tmp_path):
    config = tmp_path / "kalkan.yaml"
    write_default_config(config, data_dir=tmp_path / "data", unprivileged=True)
    dns_port, proxy_port, admin_port = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    dead_upstream = free_port(socket.SOCK_DGRAM)  # loopback only: nothing answers there
    text = config.read_text()
    text = text.replace('    - "127.0.0.1:5353"\n    - "[::1]:5353"',
                        f'    - "127.0.0.1:{dns_port}"')
    text = text.replace("    - 9.9.9.9\n    - 1.1.1.1", f'    - "127.0.0.1:{dead_upstream}"')
    text = text.replace('  listen: "127.0.0.1:3128"', f'  listen: "127.0.0.1:{proxy_port}"')
    config.write_text(text)
    assert kalkan(config, "db", "upgrade").returncode == 0
    assert kalkan(config, "demo").returncode == 0

    run = subprocess.Popen([sys.executable, "-c",
                            "import sys; from gateway.cli import main; sys.exit(main())",
                            "--config", str(config), "run", "--admin-listen",
                            f"127.0.0.1:{admin_port}"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        health = wait_for(lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{admin_port}/healthz", timeout=2).read(), timeout=90)
        assert b'"revision":2' in health.replace(b" ", b"")

        # DNS: a blocked name gets the block answer even with the upstream dead.
        query = dns.message.make_query("pornhub.com", "A")
        answer = wait_for(lambda: dns.query.udp(query, "127.0.0.1", port=dns_port, timeout=2))
        assert answer.rcode() == dns.rcode.NOERROR
        assert [rr.address for rrset in answer.answer for rr in rrset] == ["127.0.0.1"]
        # An allowed name with every upstream dead: SERVFAIL within 2 s, never a hang.
        started = time.monotonic()
        allowed = dns.query.udp(dns.message.make_query("lib.kg", "A"), "127.0.0.1",
                                port=dns_port, timeout=5)
        assert allowed.rcode() == dns.rcode.SERVFAIL and time.monotonic() - started < 2.5

        # Proxy: the block page, in the school's language (Kyrgyz) for a browser asking none.
        proxy = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy_port}"})
        opener = urllib.request.build_opener(proxy)
        blocked = wait_for(lambda: _fetch_blocked(opener), timeout=30)
        assert blocked.code == 403
        page = blocked.read().decode()
        assert 'lang="ky"' in page and "pornhub.com" in page

        # Both blocks reach the access log through each process's event writer.
        def logged() -> str:
            out = kalkan(config, "logs", "search", "--action", "block", "--host",
                         "pornhub.com").stdout
            assert "dns" in out.lower() and "http" in out.lower(), out
            return out
        wait_for(logged, timeout=15)

        # kalkan status says it is filtering and what was counted or dropped.
        def status() -> str:
            out = kalkan(config, "status").stdout
            assert "dns: running" in out and "1 blocked" not in out.split("dns:")[0], out
            assert "dropped (queue full)" in out and "events dns-0" in out, out
            return out
        shown = wait_for(status, timeout=15)
        assert "policy: revision 2 (council protocol No 1 of 2026-08-28)" in shown
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(20)
    assert run.returncode is not None


def _fetch_blocked(opener: urllib.request.OpenerDirector) -> urllib.error.HTTPError:
    """The proxy's answer for a blocked site; raises (to be retried) until it listens."""
    try:
        opener.open("http://pornhub.com/", timeout=5)
    except urllib.error.HTTPError as answer:
        return answer
    raise AssertionError("pornhub.com was not blocked")
