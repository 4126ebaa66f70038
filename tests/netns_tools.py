"""Shared by the tests that build network namespaces: running commands, inside a namespace or
not, finding out whether namespaces can be made here, and waiting for a process's log line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def sh(*args: str, check: bool = True, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check,
                          timeout=timeout)


def in_ns(ns: str, *args: str, check: bool = False,
          timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)


def namespaces_possible(tag: str, tools: tuple[str, ...]) -> str | None:
    """None if the test can run; else why not, in words. A missing tool fails under CI."""
    if sys.platform != "linux":
        return "network namespaces exist on Linux only"
    if os.geteuid() != 0:
        return "network namespaces need root (run `make test` as root, as CI does)"
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        message = f"missing tools {missing}: `make system-deps` installs them"
        if os.environ.get("CI"):
            pytest.fail(message)
        return message
    probe = f"{tag}probe"
    result = sh("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"cannot create a network namespace here: {result.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


def wait_for(path: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{text!r} did not appear in {path}:\n"
                       f"{path.read_text(errors='replace') if path.exists() else '(none)'}")
