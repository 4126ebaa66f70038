"""`kalkan admin` serves the pages from more than one process on one port, and the extra
processes do not outlive the first one."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


@pytest.mark.slow
def test_two_processes_serve_one_port_and_end_with_the_first(tmp_path):
    port = free_port()
    config = tmp_path / "kalkan.yaml"
    config.write_text(f"data_dir: {tmp_path}/data\ndatabase:\n  url: \"sqlite:///{tmp_path}/k.db\""
                      f"\nadmin:\n  listen: \"127.0.0.1:{port}\"\n")
    out = tmp_path / "admin.out"
    with out.open("wb") as sink:
        admin = subprocess.Popen(
            [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())",
             "--config", str(config), "admin", "--web-processes", "2"],
            stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
    helper = 0
    try:
        helper = int(wait_until(lambda: re.search(
            r"admin process (\d+) serving too", out.read_text()))[1])
        assert "in 2 processes" in out.read_text()
        # Each connection is a new one: over many, both processes answer (each says its pid
        # nowhere, so ask the kernel who holds the connections while they are open).
        holders: set[int] = set()
        for _ in range(40):
            connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
            for c in connections:
                c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert c.recv(100).startswith(b"HTTP/1.1 200")
            holders |= holders_of(port)
            for c in connections:
                c.close()
            if {admin.pid, helper} <= holders:
                break
        assert {admin.pid, helper} <= holders, holders
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10).status == 200
        admin.send_signal(signal.SIGKILL)  # however the first one ends, the helper follows
        admin.wait(10)
        wait_until(lambda: not alive(helper), timeout=15)
    finally:
        if admin.poll() is None:
            admin.kill()
            admin.wait(10)
        if helper and alive(helper):
            os.kill(helper, signal.SIGKILL)


def holders_of(port: int) -> set[int]:
    """The pids holding the server side of established connections on ``port``."""
    listed = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                            capture_output=True, text=True, check=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", listed)}
