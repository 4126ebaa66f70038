"""A small installation in a temporary directory for the backup tests: kalkan.yaml, an SQLite
database whose policy blocks one name for every group, and (optionally) a school CA."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

from blocklists.index import build_index
from blocklists.update import index_path
from gateway.bootstrap import ensure_policy, open_database
from gateway.config import Config, load_config, write_default_config
from policies.decision import CouncilDecision
from policies.revisions import export_policy, import_policy

BLOCKED = "blocked.example"


@dataclasses.dataclass
class School:
    config_file: Path
    config: Config

    @property
    def database(self) -> Path:
        return self.config.data_dir / "kalkan.db"

    def kalkan(self, *args: str, input: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The real command line, as the user types it."""
        return subprocess.run([sys.executable, "-c",
                               "import sys; from gateway.cli import main; sys.exit(main())",
                               "--config", str(self.config_file), *args],
                              capture_output=True, text=True, input=input, timeout=timeout,
                              check=False, env={**os.environ, "PYTHONPATH": os.getcwd()})


def make_school(tmp: Path, *, upstream: str = "127.0.0.1:9",
                database_url: str | None = None) -> School:
    """``upstream`` is a dead loopback port: allowed names fail, blocked ones never ask it."""
    config_file = tmp / "kalkan.yaml"
    write_default_config(config_file, data_dir=tmp / "data", unprivileged=True)
    text = config_file.read_text()
    # no index build in tests: the policy's own list is what blocks
    text = text.replace("  auto_update: true", "  auto_update: false")
    lines = text.splitlines()
    start = lines.index("  upstreams:")
    end = start + 1
    while lines[end].startswith("    - "):
        end += 1
    lines[start + 1:end] = [f'    - "{upstream}"']
    text = "\n".join(lines) + "\n"
    if database_url is not None:
        text = text.replace("  url: null", f'  url: "{database_url}"', 1)
    config_file.write_text(text)
    config = load_config(config_file)
    sessions = open_database(config)
    with sessions() as db:
        ensure_policy(db, config)
        document = export_policy(db)
        blocked = document.replace("sites:\n  allow: []\n  block: []",
                                   f"sites:\n  allow: []\n  block:\n    - {BLOCKED}", 1)
        assert blocked != document
        import_policy(db, blocked, file="test", author="test",
                      decision=CouncilDecision("7", "2026-01-10"))
    sessions.kw["bind"].dispose()
    # An empty blocklist index: the services would otherwise build one from the bundled
    # lists on first start (10-20 s); the policy's own list is what these tests block with.
    index = index_path(config.data_dir)
    index.parent.mkdir(parents=True, exist_ok=True)
    build_index([], index)
    return School(config_file, config)
