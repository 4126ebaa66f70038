"""``kalkan district`` as district staff use it: schools, accounts, the baseline."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import main

pytestmark = pytest.mark.postgres


def test_district_commands(postgres_url: str, tmp_path: Path):
    runner = CliRunner()

    def kalkan(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["district", "--url", postgres_url, *args], input=input,
                             catch_exceptions=False)

    done = kalkan("add-school", "osh-1", "--name", "School No 1")
    assert done.exit_code == 0, done.output
    assert "school osh-1 (School No 1) in schema school_osh_1" in done.stdout
    assert kalkan("schools").stdout.split() == ["osh-1", "school_osh_1", "School", "No", "1"]

    done = kalkan("add-staff", "okrug", "--full-name", "District ICT", "--password", "pw-123456")
    assert done.exit_code == 0 and "account okrug (district) for the district" in done.stdout
    done = kalkan("add-staff", "resp", "--full-name", "R", "--school", "osh-1",
                  "--password", "pw-123456")
    assert "account resp (responsible) for school osh-1" in done.stdout
    done = kalkan("add-staff", "x", "--full-name", "X", "--school", "osh-9", "--password", "p")
    assert done.exit_code == 2 and "the district has no school 'osh-9'" in done.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("mandatory: [adult]\nsites:\n  games: [toys.example]\n")
    done = kalkan("baseline", "publish", str(bad), "--protocol", "D-1", "--date", "2026-11-25")
    assert done.exit_code == 2
    assert f"{bad}:3: sites are listed for 'games'" in done.stderr
    assert "no baseline published yet" in kalkan("baseline", "show").stdout

    good = tmp_path / "baseline.yaml"
    good.write_text("mandatory: [adult, gambling]\n")
    done = kalkan("baseline", "publish", str(good), "--protocol", "D-2", "--date", "2026-11-25")
    assert "baseline revision 1 published: decision No D-2 of 2026-11-25" in done.stdout
    assert "mandatory: [adult, gambling]" in kalkan("baseline", "show").stdout
    assert "No D-2 of 2026-11-25" in kalkan("baseline", "history").stdout
