"""A throw-away Debian machine for the install test: debootstrap once (cached), then each run
boots a copy-on-write overlay of it with ``systemd-nspawn --boot`` in its own network
namespace (loopback only) and runs commands inside with ``nsenter``.

The cache (``$KALKAN_TEST_CACHE``, default /var/cache/kalkan-test) holds the Debian root, keyed
by a hash of the package list, and the wheels of kalkan's dependencies, keyed by a hash of
setup.cfg, so a warm run needs no network at all.
"""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv", "nftables",
            "iproute2", "ca-certificates")
CACHE = Path(os.environ.get("KALKAN_TEST_CACHE", "/var/cache/kalkan-test"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REPO = Path(__file__).resolve().parents[2]


def why_impossible() -> str | None:
    """The reason nspawn cannot run here, after trying to install what is missing."""
    if os.geteuid() != 0:
        return "the install test needs root (debootstrap, overlay mounts, systemd-nspawn)"
    wanted = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap"}
    missing = [pkg for binary, pkg in wanted.items() if shutil.which(binary) is None]
    if missing and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], capture_output=True,
                       check=False, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    still = [b for b in wanted if shutil.which(b) is None]
    if still:
        return f"{', '.join(still)} not found and apt-get could not install it"
    return None


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def debian_root() -> Path:
    """The cached minimal Debian with systemd and Python, made by debootstrap if missing."""
    key = hashlib.sha256(" ".join((SUITE, *PACKAGES)).encode()).hexdigest()[:12]
    root = CACHE / f"debian-root-{key}"
    with _locked("debian-root"):
        if not (root / "usr" / "bin" / "python3").exists():
            tmp = Path(tempfile.mkdtemp(prefix="debian-root-", dir=CACHE))
            done = subprocess.run(["debootstrap", "--variant=minbase",
                                   f"--include={','.join(PACKAGES)}", SUITE, str(tmp), MIRROR],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                shutil.rmtree(tmp, ignore_errors=True)
                raise RuntimeError(f"debootstrap failed: {done.stdout[-2000:]}{done.stderr}")
            (tmp / "etc" / "hostname").write_text("kalkan-test\n")
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
    return root


def wheels() -> Path:
    """kalkan's dependencies as wheels (from the host's pip and its cache), for an offline
    pip inside the machine."""
    key = hashlib.sha256((REPO / "setup.cfg").read_bytes()
                         + (REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    target = CACHE / f"wheels-{key}"
    with _locked("wheels"):
        if not (target / ".complete").exists():
            target.mkdir(parents=True, exist_ok=True)
            # `pip wheel`, not `pip download`: a dependency published only as source
            # (pyperclip) is built once here, not on every install inside the machine.
            # The requirements, not the checkout: building it here would leave build/ in it.
            done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet",
                                   "--disable-pip-version-check", "-w", str(target),
                                   *requirements(), "setuptools>=64", "wheel"],
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"pip wheel failed: {done.stderr[-3000:]}")
            (target / ".complete").write_text("")
    return target


def requirements() -> list[str]:
    """install_requires of setup.cfg."""
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    return [r.strip() for r in parser["options"]["install_requires"].splitlines() if r.strip()]


def source_files(repo: Path = REPO) -> list[Path]:
    """The checkout's files as git knows them (tracked and new, not ignored): no .venv."""
    done = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                           "--exclude-standard"], capture_output=True, check=True)
    names = [n for n in done.stdout.decode().split("\0") if n]
    return [Path(n) for n in names if (repo / n).is_file()]


class Machine:
    """One booted container over an overlay of the cached root; :meth:`close` always
    powers it off (or kills it) and removes every trace."""

    def __init__(self, lower: Path, workdir: Path) -> None:
        self.lower, self.workdir = lower, workdir
        self.root = workdir / "root"
        self.log = workdir / "console.log"
        for d in ("upper", "work", "root"):
            (workdir / d).mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={workdir / 'upper'},"
                        f"workdir={workdir / 'work'}", str(self.root)], check=True)
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.leader: int | None = None

    def boot(self, timeout: float = 150) -> None:  # ~5 s idle; the CI machine may be busy
        with open(self.log, "ab") as log:
            # --private-network: the machine has only its own loopback, so kalkan's ports
            # (53, 3128, 8080) collide with nothing on the host and reach nothing outside.
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "--quiet", "-D", str(self.root), "--boot", "--register=no",
                 "--keep-unit", "--private-network", "--console=pipe",
                 f"--machine=kalkan-test-{os.getpid()}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.leader is None:
            self.leader = self._init_pid()
            if time.monotonic() > deadline or self.nspawn.poll() is not None:
                raise RuntimeError(f"the machine did not boot: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        while True:
            done = self.run("systemctl is-system-running --wait", check=False,
                            timeout=max(1, deadline - time.monotonic()))
            if done.stdout.strip() in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the machine is not up after {timeout} s: {done.stdout} "
                                   f"{done.stderr}")
            time.sleep(0.5)

    def _init_pid(self) -> int | None:
        assert self.nspawn is not None
        try:
            children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children")
            pids = children.read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def run(self, script: str, *, check: bool = True, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a shell script inside the machine, in all its namespaces, as root."""
        assert self.leader is not None
        variables = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}
        done = subprocess.run(["nsenter", "-t", str(self.leader), "-a", "env", "-i",
                               *(f"{k}={v}" for k, v in variables.items()),
                               "sh", "-c", script], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"inside the machine, `{script}` failed "
                                 f"({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    def poweroff(self, timeout: float = 60) -> None:
        if self.nspawn is None:
            return
        if self.nspawn.poll() is None and self.leader is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.run("systemctl poweroff", check=False, timeout=10)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.nspawn.wait(timeout)
        if self.nspawn.poll() is None:  # did not stop: kill nspawn and everything under it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.nspawn.pid, signal.SIGKILL)
            self.nspawn.wait(10)
        self.nspawn, self.leader = None, None

    def close(self) -> None:
        try:
            self.poweroff()
        finally:
            subprocess.run(["umount", "--lazy", str(self.root)], capture_output=True,
                           check=False)
            shutil.rmtree(self.workdir, ignore_errors=True)

    def copy_in(self, files: list[Path], source: Path, target: str) -> None:
        """Copy ``files`` (relative to ``source``) to ``target`` inside the machine's root."""
        base = self.root / target.lstrip("/")
        for rel in files:
            dest = base / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest)
