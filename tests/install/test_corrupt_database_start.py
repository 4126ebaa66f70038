"""Fault: the database file is damaged when the gateway starts (power cut, failing SD card).

What the school must see: the DNS service starts anyway, the blocked name stays blocked, and
the log says which backup the database came back from; with no backup, the service refuses
to start rather than filter from a broken policy.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from backup_school import BLOCKED, School, make_school

from gateway.backup import create_backup, sqlite_problem
from gateway.database_check import last_restore


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _corrupt(db: Path) -> None:
    """Scribble over every page but the first, as a dying SD card might."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    for offset in range(page, len(data), page):
        data[offset:offset + 64] = os.urandom(64)
    db.write_bytes(bytes(data))


def _start_dns(school: School, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c",
                             "import sys; from gateway.cli import main; sys.exit(main())",
                             "--config", str(school.config_file), "dns",
                             "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})


def _ask(port: int, name: str, deadline: float) -> dns.message.Message | None:
    while time.monotonic() < deadline:
        try:
            return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                                 timeout=0.5)
        except (dns.exception.Timeout, ConnectionRefusedError, OSError):
            time.sleep(0.1)
    return None


def _stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        out, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def test_damaged_database_is_replaced_by_the_last_backup_and_the_block_holds(
        tmp_path: Path) -> None:
    school = make_school(tmp_path)
    backup = create_backup(school.config, config_file=school.config_file)
    _corrupt(school.database)
    assert sqlite_problem(school.database) is not None

    port = _free_udp_port()
    process = _start_dns(school, port)
    try:
        answer = _ask(port, BLOCKED, time.monotonic() + 30)
        assert answer is not None, _stop(process)
        assert answer.rcode() == dns.rcode.NOERROR and answer.answer  # the block page address
    finally:
        log = _stop(process)
    assert f"restored the database from backup {backup}" in log
    assert sqlite_problem(school.database) is None
    note = last_restore(school.config)
    assert note is not None and note.backup == str(backup)
    kept = Path(note.corrupt_file)
    assert kept.exists() and kept.name.startswith("kalkan.db.corrupt-")
    status = school.kalkan("status")
    assert f"database: restored at start from backup {backup}" in status.stdout, status


def test_damaged_database_without_a_backup_refuses_to_start(tmp_path: Path) -> None:
    school = make_school(tmp_path)
    _corrupt(school.database)
    port = _free_udp_port()
    process = _start_dns(school, port)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("kalkan dns started on a damaged database")
    finally:
        log = _stop(process)
    assert process.returncode == 2
    assert "is damaged" in log and "no good backup" in log and "kalkan restore FILE" in log
    assert school.database.exists()  # the evidence stays where it was
