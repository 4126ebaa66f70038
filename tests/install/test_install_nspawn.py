"""The README's install command on a fresh Debian, booted with systemd: install, install again
(nothing changes), reboot, filter, answer the admin page, uninstall, nothing left.

Runs as root with systemd-nspawn (docs/install.md says how); skipped, with the reason printed,
where that is impossible.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nspawn_machine import (
    CACHE,
    REPO,
    Machine,
    debian_root,
    source_files,
    wheels,
    why_impossible,
)

pytestmark = pytest.mark.slow

SRC = "/root/kalkan-src"
# The README's command, non-interactive: flags instead of questions (stdin is no terminal).
INSTALL = (f"cd {SRC} && PIP_NO_INDEX=1 PIP_FIND_LINKS=/root/wheels ./install.sh "
           "--network 10.99.0.0/24 --upstream 192.0.2.53 --language ru --school-id test-school")
BLOCKED = "1xbet.com"  # gambling: blocked for guests (a client in no room) by the default policy
SERVICES = ("kalkan-firewall", "kalkan-dns", "kalkan-proxy", "kalkan-admin", "kalkan-worker")
INSTALLED_FILES = ("/opt/kalkan", "/etc/kalkan", "/usr/local/bin/kalkan",
                   *(f"/etc/systemd/system/{u}.service" for u in SERVICES),
                   "/etc/systemd/system/kalkan.target")
CHECKSUMS = ("find /opt/kalkan /etc/kalkan /usr/local/bin/kalkan /etc/systemd/system "
             "-type f -print0 | sort -z | xargs -0 sha256sum")

DNS_QUERY = f"""/opt/kalkan/bin/python - <<'EOF'
import socket, dnslib
q = dnslib.DNSRecord.question({BLOCKED!r}, "A")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(q.pack(), ("127.0.0.1", 53))
r = dnslib.DNSRecord.parse(s.recv(4096))
print(dnslib.RCODE[r.header.rcode], *[str(a.rdata) for a in r.rr])
EOF"""
ADMIN_PAGE = """/opt/kalkan/bin/python - <<'EOF'
import http.client
c = http.client.HTTPConnection("127.0.0.1", 8080, timeout=5)
c.request("GET", "/")
r = c.getresponse()
print(r.status, r.getheader("Location") or "")
EOF"""


@pytest.fixture(scope="module")
def machine() -> Machine:
    reason = why_impossible()
    if reason:
        print(f"\nSKIPPED the install test: {reason}")
        pytest.skip(reason)
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:  # cold: debootstrap and pip wheel side by side
        root_job, wheels_job = pool.submit(debian_root), pool.submit(wheels)
        lower, wheel_dir = root_job.result(), wheels_job.result()
    print(f"\n[install test] Debian root and wheels ready in {time.monotonic() - started:.1f} s "
          f"(cache {CACHE})", flush=True)
    box = Machine(lower, Path(tempfile.mkdtemp(prefix="kalkan-nspawn-")))
    try:
        box.copy_in(source_files(), REPO, SRC)
        box.copy_in([p.relative_to(wheel_dir) for p in wheel_dir.glob("*") if p.is_file()],
                    wheel_dir, "/root/wheels")
        box.boot()
        yield box
    finally:
        box.close()


def _step(name: str, since: float) -> float:
    now = time.monotonic()
    print(f"[install test] {name}: {now - since:.1f} s", flush=True)
    return now


def test_install_reboot_filter_uninstall(machine: Machine) -> None:
    t = time.monotonic()
    first = machine.run(INSTALL, timeout=300)
    assert "installed kalkan from" in first.stdout, first.stdout
    assert "kalkan setup: done" in first.stdout, first.stdout
    t = _step("first install (venv, offline pip, setup, start)", t)

    # Idempotent: the second run changes no file and says so.
    before = machine.run(CHECKSUMS).stdout
    second = machine.run(INSTALL, timeout=120)
    assert "already holds this source tree (unchanged)" in second.stdout, second.stdout
    assert "kalkan setup: nothing changed" in second.stdout, second.stdout
    assert machine.run(CHECKSUMS).stdout == before
    t = _step("second install (nothing changed)", t)

    # A changed source tree: install.sh upgrades (backup, pip, migrate, restart).
    machine.run(f"echo '<!-- a newer kalkan -->' >> {SRC}/README.md")
    third = machine.run(INSTALL, timeout=300)
    assert "kalkan upgrade: kalkan backup: wrote /var/lib/kalkan/backups/" in third.stdout, third
    assert "kalkan upgrade: services restarted" in third.stdout, third.stdout
    assert "installed kalkan from" in third.stdout
    t = _step("upgrade from a changed tree", t)

    # Reboot: everything comes back by itself and filters.
    machine.poweroff()
    machine.boot()
    t = _step("reboot", t)
    active = machine.run(f"systemctl is-active kalkan.target {' '.join(SERVICES)}",
                         check=False).stdout.split()
    assert active == ["active"] * (1 + len(SERVICES)), machine.run(
        "systemctl status 'kalkan*' --no-pager; journalctl -u 'kalkan*' --no-pager -n 80",
        check=False).stdout
    # DNS was ready (Type=notify) before network-online.target: the first PC is filtered.
    order = machine.run("systemctl show -p Before --value kalkan-dns.service").stdout
    assert "network-online.target" in order
    answer = machine.run(DNS_QUERY).stdout.split()
    assert answer[0] == "NOERROR" and len(answer) == 2, answer  # the block page's address
    code, location = ([*machine.run(ADMIN_PAGE).stdout.split(), ""])[:2]
    assert code in ("200", "302"), (code, location)
    assert "table inet kalkan" in machine.run("nft list tables").stdout
    assert "10.99.0.0/24" in machine.run("nft list table inet kalkan").stdout
    # Least privilege: each service runs as kalkan with at most the one capability it needs
    # (CAP_NET_BIND_SERVICE is bit 10: 0x400), the worker with none.
    for service, caps in (("kalkan-dns", 0x400), ("kalkan-proxy", 0x400),
                          ("kalkan-admin", 0x400), ("kalkan-worker", 0)):
        pid = machine.run(f"systemctl show -p MainPID --value {service}").stdout.strip()
        status = dict(line.split(":", 1) for line in
                      machine.run(f"cat /proc/{pid}/status").stdout.splitlines())
        assert status["Uid"].split()[0] == machine.run("id -u kalkan").stdout.strip()
        assert int(status["CapEff"], 16) == caps, (service, status["CapEff"])
        assert int(status["NoNewPrivs"]) == 1
    # The everyday commands, as root through /usr/local/bin/kalkan (run as the kalkan user).
    status_text = machine.run("kalkan status").stdout
    assert "dns: running on 0.0.0.0:53" in status_text, status_text
    made = machine.run("kalkan backup").stdout  # no CA yet: no passphrase asked
    assert "wrote /var/lib/kalkan/backups/kalkan-backup-test-school-" in made, made
    assert machine.run("stat -c %U /var/lib/kalkan/backups").stdout.strip() == "kalkan"
    t = _step("checks after reboot", t)

    done = machine.run(f"cd {SRC} && ./install.sh --uninstall --purge", timeout=120)
    assert "kalkan uninstall: done" in done.stdout, done.stdout
    left = machine.run(" ; ".join(f"test -e {p} && echo {p}" for p in
                                  (*INSTALLED_FILES, "/var/lib/kalkan")), check=False).stdout
    assert left.strip() == "", left
    assert machine.run("id kalkan", check=False).returncode != 0
    assert "kalkan" not in machine.run("nft list tables").stdout
    assert machine.run("systemctl list-unit-files 'kalkan*' --no-legend",
                       check=False).stdout.strip() == ""
    assert machine.run("pgrep -u 0 -f /opt/kalkan; pgrep -f 'kalkan '",
                       check=False).stdout.strip() == ""
    _step("uninstall (nothing left)", t)
