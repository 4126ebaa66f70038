"""A whole gateway as real processes on loopback (``kalkan run``: DNS, proxy, admin, monitor,
notifier), with upstream resolvers and an origin web server that a test can silence.

Test modules load it with ``pytest_plugins = ["ops_harness"]`` and use the ``gateway``
fixture; everything listens on ephemeral loopback ports and is stopped at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from blocklists.entries import ListEntry
from blocklists.index import build_index
from blocklists.update import index_path

CLI = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    """``check()``'s value once it returns without raising; its last error after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


class SilenceableUpstream:
    """A resolver on loopback: every A query gets 192.0.2.1 (TTL 60). ``silent = True`` makes
    it drop every query, which is what a dead uplink looks like from the router."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.silent = False
        self.queries = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from dnslib import QTYPE, RR, A, DNSRecord

        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.queries += 1
            if self.silent:
                continue
            request = DNSRecord.parse(data)
            reply = request.reply()
            if request.q.qtype == QTYPE.A:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
            self.sock.sendto(reply.pack(), peer)

    def stop(self) -> None:
        self.sock.close()


class Origin:
    """A web site on loopback that answers "hello from the origin"."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"hello from the origin"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Gateway:
    """``kalkan run`` with its own kalkan.yaml; ``sections`` are merged into that file."""

    def __init__(self, root: Path, template: Path, upstreams: list[str], *,
                 data_dir: Path | None = None, **sections: dict[str, Any]) -> None:
        self.root = root
        self.data_dir = data_dir or root / "data"
        self.status_dir = root / "run-status"  # like /run/kalkan/status: not on the data disk
        self.dns_port, self.proxy_port, self.admin_port = (
            free_port(socket.SOCK_DGRAM), free_port(), free_port())
        data: dict[str, Any] = {
            "data_dir": str(self.data_dir), "status_dir": str(self.status_dir),
            "language": "ky",
            "dns": {"listen": [f"127.0.0.1:{self.dns_port}"], "upstreams": upstreams,
                    "max_ttl": 1},  # answers expire at once: what follows is serve-stale
            "proxy": {"listen": f"127.0.0.1:{self.proxy_port}", "verify_destination": False},
            "admin": {"listen": f"127.0.0.1:{self.admin_port}"},
            "events": {"flush_interval": 0.05, "database_timeout": 0.2},
            "blocklists": {"auto_update": False},
            "alerts": {"enabled": False},
            "daily_status": {"sample_seconds": 1.0, "uplink_interface": "lo"},
        }
        for name, values in sections.items():
            data[name] = {**data.get(name, {}), **values}
        self.config = root / "kalkan.yaml"
        self.config.write_text(yaml.safe_dump(data))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, self.data_dir / "kalkan.db")  # the demo school, migrated
        # A tiny index instead of the 700,000 bundled names: `kalkan run` builds none then.
        # "localhost" (the origin) and *.example.kg (the names the tests look up) are listed
        # as educational: the guests group, where loopback clients fall, may open them.
        build_index([("test", [ListEntry("pornhub.com", "adult"),
                               ListEntry("localhost", "education"),
                               ListEntry("example.kg", "education")])],
                    index_path(self.data_dir))
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> Gateway:
        self.process = subprocess.Popen(
            [*CLI, "--config", str(self.config), "run"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        wait_for(lambda: self.admin("/healthz"), timeout=60)
        wait_for(lambda: self._status_files(), timeout=60)
        return self

    def _status_files(self) -> None:
        assert (self.status_dir / "dns.json").exists()
        assert list(self.status_dir.glob("events-proxy-*.json"))
        socket.create_connection(("127.0.0.1", self.proxy_port), timeout=1).close()

    def stop(self) -> str:
        if self.process is None:
            return ""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        output = self.process.stdout.read() if self.process.stdout else ""
        self.process = None
        return output

    wait_for = staticmethod(wait_for)

    # --- what a user or a monitoring system does ---------------------------------------------

    def kalkan(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, "--config", str(self.config), *args],
                              capture_output=True, text=True, timeout=60)

    def admin(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}",
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def browse(self, url: str, language: str = "ru") -> tuple[int, str]:
        """``url`` through the proxy, as a browser set to ``language`` would ask."""
        handler = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{self.proxy_port}"})
        opener = urllib.request.build_opener(handler)
        request = urllib.request.Request(url, headers={"Accept-Language": language})
        try:
            with opener.open(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        code, text = self.admin("/metrics")
        assert code == 200, text
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def status_json(self) -> dict[str, Any]:
        done = self.kalkan("status", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture
def upstreams() -> Iterator[list[SilenceableUpstream]]:
    servers = [SilenceableUpstream(), SilenceableUpstream()]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture
def origin() -> Iterator[Origin]:
    site = Origin()
    yield site
    site.stop()


@pytest.fixture
def start_gateway(tmp_path: Path, demo_template: Path) -> Iterator[Callable[..., Gateway]]:
    """``start_gateway(upstreams, data_dir=None, **sections)``: a running gateway."""
    started: list[Gateway] = []

    def start(upstreams: list[str], **kwargs: Any) -> Gateway:
        gateway = Gateway(tmp_path, demo_template, upstreams, **kwargs)
        started.append(gateway)
        return gateway.start()

    yield start
    for gateway in started:
        gateway.stop()
