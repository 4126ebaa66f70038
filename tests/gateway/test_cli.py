"""The `kalkan` command line, driven as a school's ICT teacher types it."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.config import load_config
from policies.database import open_engine, session_factory
from policies.demo import demo_policy_data
from policies.document import render_document
from policies.revisions import export_policy, history

LESSON = "2030-11-27T10:00"  # a Wednesday, inside the demo school's hours (Bishkek time)


class Kalkan:
    """Runs `kalkan --config <tmp>/kalkan.yaml …` in-process, as the console script would."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.config = tmp_path / "kalkan.yaml"
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return self.runner.invoke(main, ["--config", str(self.config), *args], input=input,
                                  catch_exceptions=False)

    def ok(self, *args: str, input: str | None = None) -> str:
        result = self(*args, input=input)
        assert result.exit_code == 0, result.output
        return result.stdout

    def db(self):  # type: ignore[no-untyped-def]
        return session_factory(open_engine(load_config(self.config).database_url))()


@pytest.fixture
def kalkan(tmp_path: Path) -> Kalkan:
    k = Kalkan(tmp_path)
    out = k.ok("init", "--path", str(k.config), "--data-dir", str(tmp_path / "data"))
    assert f"wrote {k.config}" in out
    return k


def database_file(k: Kalkan) -> Path:
    return Path(load_config(k.config).database_url.removeprefix("sqlite:///"))


@pytest.fixture(scope="session")
def school_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`kalkan db upgrade` then `kalkan demo`, once: the tests start from copies of it."""
    tmp = tmp_path_factory.mktemp("school")
    k = Kalkan(tmp)
    k.ok("init", "--path", str(k.config), "--data-dir", str(tmp / "data"))
    assert "(policy revision 1)" in k.ok("db", "upgrade")
    assert "demo school loaded as policy revision 2" in k.ok("demo")
    return database_file(k)


@pytest.fixture
def school(kalkan: Kalkan, school_template: Path) -> Kalkan:
    """A database with the shipped default policy (revision 1) and then the demo (revision 2)."""
    target = database_file(kalkan)
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(school_template)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)  # a consistent copy, whatever is still in the template's WAL
    return kalkan


# --- installation -------------------------------------------------------------------------

def test_init_writes_a_config_that_points_at_the_data_directory(kalkan, tmp_path):
    config = load_config(kalkan.config)
    assert config.data_dir == tmp_path / "data"
    assert config.database_url == f"sqlite:///{tmp_path}/data/kalkan.db"


def test_init_refuses_to_overwrite_unless_forced(kalkan):
    kalkan.config.write_text(kalkan.config.read_text() + "# my notes\n")
    result = kalkan("init", "--path", str(kalkan.config))
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert kalkan.config.read_text().endswith("# my notes\n")
    kalkan.ok("init", "--path", str(kalkan.config), "--force")
    assert "# my notes" not in kalkan.config.read_text()


def test_a_missing_config_file_is_reported_with_what_to_do(tmp_path):
    result = Kalkan(tmp_path)("db", "upgrade")
    assert result.exit_code == 2
    assert "kalkan.yaml: no such configuration file" in result.stderr
    assert "kalkan init" in result.stderr


def test_db_upgrade_creates_the_database_with_the_default_policy(kalkan):
    out = kalkan.ok("db", "upgrade")
    assert "database ready at sqlite:///" in out and "(policy revision 1)" in out
    assert "(policy revision 1)" in kalkan.ok("db", "upgrade")  # again: nothing new
    with kalkan.db() as db:
        revisions = history(db)
    assert [(r.id, r.protocol, r.author) for r in revisions] == [(1, "0", "kalkan")]


def test_demo_loads_the_demo_school_as_a_revision(kalkan):
    assert "demo school loaded as policy revision 1" in kalkan.ok("demo")
    assert "demo school loaded as policy revision 1" in kalkan.ok("demo")  # idempotent
    with kalkan.db() as db:
        assert export_policy(db) == render_document(demo_policy_data())


# --- policy as code -----------------------------------------------------------------------

def test_policy_export_to_stdout_and_to_a_file(school, tmp_path):
    with school.db() as db:
        current = export_policy(db)
    assert school.ok("policy", "export") == current
    target = tmp_path / "policy.yaml"
    result = school("policy", "export", "-o", str(target))
    assert result.exit_code == 0 and result.stdout == ""
    assert f"wrote {target}" in result.stderr
    assert target.read_text(encoding="utf-8") == current


def test_policy_validate_says_valid_or_names_the_file_and_line(school, tmp_path):
    good = tmp_path / "good.yaml"
    school.ok("policy", "export", "-o", str(good))
    out = school.ok("policy", "validate", str(good))
    assert out.startswith(f"{good}: valid (5 groups, 4 rooms")

    text = good.read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("    session_required: true\n", "    session_required: maybe\n",
                                1), encoding="utf-8")
    line = text.splitlines().index("    session_required: true") + 1
    result = school("policy", "validate", str(bad))
    assert result.exit_code == 2
    assert f"error: {bad}:{line}: groups.0.session_required" in result.stderr
    assert "→" in result.stderr  # and what to do about it

    missing = school("policy", "validate", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "no such file" in missing.stderr

    notepad = tmp_path / "notepad.yaml"  # as Windows Notepad saves it: BOM and CRLF
    notepad.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert "valid" in school.ok("policy", "validate", str(notepad))


def test_policy_import_applies_a_revision_with_its_council_decision(school, tmp_path):
    path = tmp_path / "policy.yaml"
    text = school.ok("policy", "export")
    path.write_text(text.replace("  block:\n    - 1xbet.com\n",
                                 "  block:\n    - 1xbet.com\n    - casino.example\n"),
                    encoding="utf-8")
    out = school.ok("policy", "import", str(path), "--protocol", "7", "--date", "2026-10-01",
                    "--author", "council", "--comment", "casinos")
    assert out.strip() == "policy revision 3 applied: council protocol No 7 of 2026-10-01"
    out = school.ok("policy", "import", str(path), "--protocol", "8", "--date", "2026-10-02")
    assert "policy revision 4 applied (no rule changed)" in out
    assert "    - casino.example\n" in school.ok("policy", "export")


def test_policy_import_from_standard_input(school):
    text = school.ok("policy", "export").replace("    - 1xbet.com\n",
                                                 "    - 1xbet.com\n    - casino.example\n")
    school.ok("policy", "import", "-", "--protocol", "7", "--date", "2026-10-01", input=text)
    assert "    - casino.example\n" in school.ok("policy", "export")


@pytest.mark.parametrize("args", [["--date", "2026-10-01"], ["--protocol", "7"]])
def test_policy_import_needs_the_council_decision(school, tmp_path, args):
    path = tmp_path / "policy.yaml"
    school.ok("policy", "export", "-o", str(path))
    result = school("policy", "import", str(path), *args)
    assert result.exit_code == 2
    assert "Missing option" in result.stderr
    assert "--protocol" in result.stderr or "--date" in result.stderr
    with school.db() as db:
        assert len(history(db)) == 2


def test_a_refused_import_changes_nothing(school, tmp_path):
    before = school.ok("policy", "export")
    path = tmp_path / "policy.yaml"
    path.write_text(before.replace("- id: adult\n    mandatory: true",
                                   "- id: adult\n    mandatory: false"), encoding="utf-8")
    result = school("policy", "import", str(path), "--protocol", "7", "--date", "2026-10-01")
    assert result.exit_code == 2
    assert re.search(rf"error: {re.escape(str(path))}:\d+: category 'adult' must stay mandatory",
                     result.stderr)
    good = tmp_path / "good.yaml"
    good.write_text(before.replace("    - 1xbet.com\n", "    - 1xbet.com\n    - casino.example\n"),
                    encoding="utf-8")
    result = school("policy", "import", str(good), "--protocol", "7", "--date", "1 October")
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.stderr
    assert school.ok("policy", "export") == before


def test_policy_history_diff_and_rollback(school, tmp_path):
    history_lines = school.ok("policy", "history").splitlines()
    assert len(history_lines) == 2
    assert re.match(r"\s+1  \d{4}-\d\d-\d\d \d\d:\d\d UTC  kalkan\s+protocol No 0 of ",
                    history_lines[0])
    assert "protocol No 1 of 2026-08-28" in history_lines[1]
    assert "demo school" in history_lines[1]

    diff = school.ok("policy", "diff", "1", "2")
    assert diff.startswith("--- revision 1\n+++ revision 2\n")
    assert "\n-  id: school\n" in diff and "\n+  id: demo-school-1\n" in diff
    assert "hold the same policy" in school.ok("policy", "diff", "2", "2")

    # The default policy has no groups for the demo's classes: going back to it is refused.
    refused = school("policy", "rollback", "1", "--protocol", "9", "--date", "2026-11-02")
    assert refused.exit_code == 2
    assert "group 'primary' is still used by class '1A'" in refused.stderr

    path = tmp_path / "policy.yaml"
    path.write_text(school.ok("policy", "export").replace("    - 1xbet.com\n", ""),
                    encoding="utf-8")
    school.ok("policy", "import", str(path), "--protocol", "7", "--date", "2026-10-01")
    assert "\n-    - 1xbet.com\n" in school.ok("policy", "diff", "2", "3")
    out = school.ok("policy", "rollback", "2", "--protocol", "9", "--date", "2026-11-02",
                    "--comment", "1xbet is back on the list")
    assert "policy revision 4 applied: back to revision 2" in out
    with school.db() as db:
        revisions = history(db)
        assert export_policy(db) == revisions[1].document
    assert revisions[3].comment == "rollback to revision 2: 1xbet is back on the list"
    assert len(school.ok("policy", "history").splitlines()) == 4

    missing = school("policy", "rollback", "7", "--protocol", "9", "--date", "2026-11-02")
    assert missing.exit_code == 2
    assert "there is no policy revision 7" in missing.stderr
    assert "kalkan policy history" in missing.stderr


def test_policy_rollback_to_the_first_revision(kalkan, tmp_path):
    kalkan.ok("db", "upgrade")
    first = kalkan.ok("policy", "export")
    path = tmp_path / "policy.yaml"
    path.write_text(first.replace("  name: School\n", "  name: School No 61\n"),
                    encoding="utf-8")
    kalkan.ok("policy", "import", str(path), "--protocol", "3", "--date", "2026-09-01")
    assert "\n-  name: School\n+  name: School No 61\n" in kalkan.ok("policy", "diff", "1", "2")
    out = kalkan.ok("policy", "rollback", "1", "--protocol", "4", "--date", "2026-09-15")
    assert out == "policy revision 3 applied: back to revision 1\n"
    assert kalkan.ok("policy", "export") == first


# --- decisions and sessions -----------------------------------------------------------------

def test_check_explains_and_exits_0_when_allowed_1_when_blocked(school):
    allowed = school("check", "lib.kg", "--client", "10.10.9.20", "--at", LESSON)
    assert allowed.exit_code == 0
    assert allowed.stdout.startswith("Allowed: lib.kg for client 10.10.9.20, room staffroom, "
                                     "group teachers.")

    blocked = school("check", "lib.kg", "--client", "10.10.1.101", "--at", LESSON)
    assert blocked.exit_code == 1
    assert blocked.stdout.startswith("Blocked: lib.kg for client 10.10.1.101 (device lab1-pc01)")
    assert ("Reason: students go online only during a session opened by a teacher "
            "(regulation 2.9), and none is open for this room") in blocked.stdout

    porn = school("check", "www.pornhub.com", "--client", "10.10.1.101", "--at", LESSON)
    assert porn.exit_code == 1 and "regulation 3.3" in porn.stdout


@pytest.mark.parametrize(("args", "words"), [
    (["bad..host", "--client", "10.10.1.101"], "empty label"),
    (["lib.kg", "--client", "10.10.1.101", "--at", "yesterday"], "is not a time"),
    (["lib.kg", "--client", "not-an-address"], "not an IP address"),
])
def test_check_refuses_what_it_cannot_read(school, args, words):
    result = school("check", *args)
    assert result.exit_code == 2
    assert words in result.stderr and "→" in result.stderr


def test_a_session_opens_and_the_check_allows_then_closes(school):
    out = school.ok("session", "open", "--room", "lab1", "--class", "7B", "--teacher", "aigul",
                    "--minutes", "45")
    assert re.fullmatch(r"session #1 open in lab1 for 7B until \d\d:\d\d \(normal\)\n", out)
    listed = school.ok("session", "list")
    assert re.match(r"#1\s+lab1\s+7B\s+aigul\s+\d\d:\d\d–\d\d:\d\d normal", listed)

    now = school("check", "lib.kg", "--client", "10.10.1.101")  # (now may be after hours)
    assert "Session: #1" in now.stdout and "regulation 2.9" not in now.stdout

    assert re.fullmatch(r"session #1 now ends at \d\d:\d\d\n",
                        school.ok("session", "extend", "1", "--minutes", "10"))
    assert school.ok("session", "close", "1") == "session #1 closed\n"
    assert school.ok("session", "list") == "no open sessions\n"
    assert "#1" in school.ok("session", "list", "--all")

    again = school("session", "close", "1")
    assert again.exit_code == 2 and "session #1 has already ended" in again.stderr


def test_a_focus_session_is_listed_with_its_sites(school):
    out = school.ok("session", "open", "--room", "lab2", "--class", "10A", "--teacher", "bakyt",
                    "--focus", "Lib.KG, daryn.online")
    assert "(focus)" in out
    assert "focus: lib.kg, daryn.online" in school.ok("session", "list")


@pytest.mark.parametrize(("args", "words"), [
    (["--room", "nowhere"], "there is no room 'nowhere'"),
    (["--room", "lab1", "--class", "12C"], "there is no class '12C'"),
    (["--room", "lab1", "--minutes", "0"], "a session of 0 minutes is not possible"),
    (["--room", "lab1", "--closed", "--focus", "lib.kg"], "a session is either closed or focused"),
    (["--room", "lab1", "--focus", "lib..kg"], "focus site: 'lib..kg' has an empty label"),
])
def test_session_open_refuses_with_a_clear_error(school, args, words):
    result = school("session", "open", "--teacher", "aigul", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and words in result.stderr
    assert "→" in result.stderr
    assert school.ok("session", "list") == "no open sessions\n"


def test_session_open_for_an_unknown_room_lists_the_rooms(school):
    result = school("session", "open", "--room", "nowhere", "--teacher", "aigul")
    assert result.exit_code == 2
    assert "no room" in result.stderr
    assert "rooms are: lab1, lab2, library, staffroom" in result.stderr


# --- the installed command ------------------------------------------------------------------

def test_the_console_script_runs(tmp_path):
    script = Path(sys.executable).with_name("kalkan")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kalkan: internet filtering for schools" in done.stdout
    for command_name in ("init", "db", "demo", "policy", "check", "session", "run"):
        assert f"  {command_name} " in done.stdout
