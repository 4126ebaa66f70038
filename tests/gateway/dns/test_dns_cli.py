"""``kalkan dns`` as an administrator runs it: two worker processes on one port, the status
file that ``kalkan status`` reads, a clean stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dns_fake_upstream import FakeUpstream
from dns_harness import ZONE, ask, free_port, import_revision, loopback_policy, rcode, records
from sqlalchemy.orm import Session, sessionmaker

from policies.database import migrate, open_engine, session_factory
from policies.demo import seed_demo
from policies.sessions import open_session

# The `kalkan` console script, run by this interpreter (as `python -m gateway.cli` would import
# gateway.cli twice).
KALKAN = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


@pytest.fixture
def installation(tmp_path: Path):
    """kalkan.yaml, a database with the loopback school, and a fake upstream."""
    url = f"sqlite:///{tmp_path}/kalkan.db"
    engine = open_engine(url)
    migrate(engine)
    sessions: sessionmaker[Session] = session_factory(engine)
    with sessions() as db:
        seed_demo(db)
    import_revision(sessions, loopback_policy())
    with sessions() as db:
        open_session(db, room="loopback", teacher="aigul", class_id="7B", minutes=60)
    engine.dispose()
    upstream = FakeUpstream(ZONE, host="127.0.0.77").start()
    port = free_port("127.0.0.1")
    config = tmp_path / "kalkan.yaml"
    config.write_text(f'data_dir: "{tmp_path}"\ndatabase:\n  url: "{url}"\n'
                      f'dns:\n  listen: ["127.0.0.1:{port}"]\n'
                      f'  upstreams: ["{upstream.address}"]\n'
                      f"policy:\n  reload_interval: 0.2\n")
    yield config, port
    upstream.stop()


def test_kalkan_dns_runs_two_workers_and_writes_its_status(installation, tmp_path):
    config, port = installation
    process = subprocess.Popen([*KALKAN, "--config", str(config), "dns", "--workers", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 40  # generous: CI machines are busy
        while True:
            try:
                answer = ask(port, "bilimland.kz", timeout=0.5)
                break
            except Exception:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "kalkan dns did not start"
                time.sleep(0.2)
        assert records(answer) == ["A 192.0.2.10"]
        for source in ("127.0.0.1", "127.0.0.5", "127.0.0.7", "127.0.0.8"):
            assert records(ask(port, "pornhub.com", source=source)) == ["A 127.0.0.1"]
        status = tmp_path / "status" / "dns.json"
        deadline = time.monotonic() + 30
        while not (status.exists() and len(json.loads(status.read_text()).get("workers", ()))
                   == 2):
            assert time.monotonic() < deadline, "no status/dns.json for two workers"
            time.sleep(0.2)
        summary = json.loads(status.read_text())
        assert summary["counters"]["queries"] >= 1
        assert summary["listen"] == [f"127.0.0.1:{port}"]
        assert len({w["pid"] for w in summary["workers"]}) == 2
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0
    assert rcode_or_none(port) is None  # nothing answers any more


def rcode_or_none(port: int) -> str | None:
    try:
        return rcode(ask(port, "lib.kg", timeout=0.3))
    except Exception:
        return None


def test_kalkan_dns_refuses_a_bad_listen_address(installation):
    config, _ = installation
    out = subprocess.run([*KALKAN, "--config", str(config), "dns", "--listen", "localhost:53"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "not an IP address" in out.stderr
