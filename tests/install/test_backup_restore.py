"""``kalkan backup`` / ``kalkan restore``: what comes back, and what is refused untouched."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
from pathlib import Path

import pytest
from backup_school import BLOCKED, School, make_school

from gateway.backup import BackupError, create_backup, read_archive, restore_backup
from gateway.proxy.ca import CERT_FILE, KEY_FILE, ca_dir, create_ca


def _site_rules(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT domain FROM site_rules")]


@pytest.fixture()
def school(tmp_path: Path) -> School:
    s = make_school(tmp_path)
    create_ca(ca_dir(s.config.data_dir), "test-school")
    return s


def test_backup_then_restore_brings_back_database_config_and_ca(school: School,
                                                                 tmp_path: Path) -> None:
    passphrase = tmp_path / "pass"
    passphrase.write_text("correct horse\n")
    made = school.kalkan("backup", "--to", str(tmp_path / "out"), "--passphrase-file",
                         str(passphrase))
    assert made.returncode == 0, made.stderr
    archive = Path(made.stdout.split("wrote ")[1].strip())
    assert archive.parent == tmp_path / "out" and archive.name.endswith(".tar.gz")
    # The key is in the archive only encrypted.
    with tarfile.open(archive) as tar:
        key = tar.extractfile("ca/kalkan-ca.key").read()
        manifest = json.loads(tar.extractfile("manifest.json").read())
    assert b"ENCRYPTED" in key
    assert manifest["ca_key"] == "encrypted" and manifest["database"] == "sqlite"

    # Everything lost: the database, the CA, the configuration edited.
    original_key = (ca_dir(school.config.data_dir) / KEY_FILE).read_bytes()
    original_config = school.config_file.read_text()
    school.database.unlink()
    for p in ca_dir(school.config.data_dir).iterdir():
        p.unlink()
    school.config_file.write_text(original_config.replace("language: ky", "language: en"))

    back = school.kalkan("restore", str(archive), "--passphrase-file", str(passphrase))
    assert back.returncode == 0, back.stderr
    assert "restored database" in back.stdout and "school CA with its key" in back.stdout
    assert BLOCKED in _site_rules(school.database)
    assert (ca_dir(school.config.data_dir) / KEY_FILE).read_bytes() == original_key
    assert school.config_file.read_text() == original_config
    check = school.kalkan("check", BLOCKED, "--client", "10.1.2.3")
    assert check.stdout.startswith("Blocked"), check.stdout


def test_wrong_passphrase_is_refused_and_nothing_changes(school: School, tmp_path: Path) -> None:
    archive = create_backup(school.config, tmp_path, config_file=school.config_file,
                            passphrase=b"right")
    school.database.unlink()
    refused = school.kalkan("restore", str(archive), "--passphrase-file",
                            str(_write(tmp_path / "p", "wrong")))
    assert refused.returncode == 2
    assert "wrong passphrase" in refused.stderr and "nothing was restored" in refused.stderr
    assert not school.database.exists()  # not even the database came back
    assert not list(school.config.data_dir.glob(".*.restoring"))


def test_damaged_or_cut_archive_is_refused_with_a_clear_error(school: School,
                                                              tmp_path: Path) -> None:
    archive = create_backup(school.config, tmp_path, config_file=school.config_file,
                            passphrase=b"pw")
    before = school.database.read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    refused = school.kalkan("restore", str(cut), "--passphrase-file",
                            str(_write(tmp_path / "p", "pw")))
    assert refused.returncode == 2
    assert "is not a readable kalkan backup" in refused.stderr
    assert "use another backup" in refused.stderr

    # A well-formed archive whose database was changed after the checksums were taken.
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for info in src:
            data = src.extractfile(info).read()
            if info.name == "database/kalkan.db":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            dst.addfile(info, io.BytesIO(data))
    with pytest.raises(BackupError, match=r"database/kalkan\.db does not match its checksum"):
        read_archive(tampered)
    assert school.database.read_bytes() == before


def test_nightly_backup_without_passphrase_leaves_the_key_out(school: School) -> None:
    archive = create_backup(school.config, config_file=school.config_file)
    checked = read_archive(archive)
    assert archive.parent == school.config.data_dir / "backups"
    assert checked.manifest.ca_key == "omitted"
    assert "ca/kalkan-ca.key" not in checked.members
    # Restoring it asks for no passphrase and keeps the key that is there.
    key = (ca_dir(school.config.data_dir) / KEY_FILE).read_bytes()
    done = restore_backup(school.config, checked, config_file=None)
    assert any("no key in this backup" in line for line in done)
    assert (ca_dir(school.config.data_dir) / KEY_FILE).read_bytes() == key
    assert (ca_dir(school.config.data_dir) / CERT_FILE).exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.postgres
def test_postgresql_database_goes_through_pg_dump_and_comes_back(tmp_path: Path,
                                                                 postgres_url: str) -> None:
    school = make_school(tmp_path, database_url=postgres_url)
    archive = create_backup(school.config, tmp_path, config_file=school.config_file)
    checked = read_archive(archive)
    assert checked.manifest.database == "postgresql"
    assert b"CREATE TABLE" in checked.members["database/kalkan.sql"]
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM site_rules"))
    done = restore_backup(school.config, checked, config_file=None)
    assert "PostgreSQL database" in done
    with engine.connect() as conn:
        domains = conn.execute(text("SELECT domain FROM site_rules")).scalars().all()
    engine.dispose()
    assert BLOCKED in domains


def test_nightly_backup_keeps_keep_days_and_never_the_last_one(school: School) -> None:
    import os
    import time

    from gateway.backup_schedule import run_nightly_backup

    directory = school.config.backup_dir
    made = run_nightly_backup(school.config, school.config_file)
    old = made.rename(made.with_name("kalkan-backup-school-20260101T023000Z.tar.gz"))
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    (directory / "notes.txt").write_text("not a backup: left alone")
    newest = run_nightly_backup(school.config, school.config_file)  # keep_days is 14
    assert not old.exists()
    assert sorted(p.name for p in directory.iterdir()) == sorted([newest.name, "notes.txt"])
    # Alone and old, the last backup stays: it is what a damaged database comes back from.
    os.utime(newest, (month_ago, month_ago))
    from gateway.backup import prune_backups

    assert prune_backups(directory, 14) == [] and newest.exists()
