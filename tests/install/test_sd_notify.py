"""The readiness and watchdog datagrams that systemd's Type=notify units wait for."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from backup_school import make_school

from gateway import sd_notify


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)
    return sock


def test_ready_reaches_the_notify_socket_and_nothing_happens_outside_systemd(
        tmp_path: Path, monkeypatch) -> None:
    sock = _listen(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    sd_notify.ready("DNS up")
    assert sock.recv(4096) == b"READY=1\nSTATUS=DNS up"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sd_notify.notify("READY=1") is False


def test_worker_says_ready_then_keeps_pinging_the_watchdog(tmp_path: Path) -> None:
    school = make_school(tmp_path)
    sock = _listen(tmp_path / "notify")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "NOTIFY_SOCKET": str(tmp_path / "notify"),
           "WATCHDOG_USEC": "1000000"}  # a ping every 0.5 s
    process = subprocess.Popen([sys.executable, "-c",
                                "import sys; from gateway.cli import main; sys.exit(main())",
                                "--config", str(school.config_file), "worker"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        messages = [sock.recv(4096)]
        assert messages[0].startswith(b"READY=1")
        started = time.monotonic()
        while len(messages) < 4:
            messages.append(sock.recv(4096))
        assert messages[1:] == [b"WATCHDOG=1"] * 3
        assert time.monotonic() - started < 5
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode == 0  # SIGTERM is a clean stop, not a failure to restart
