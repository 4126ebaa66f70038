"""One archive with everything a school cannot download again: the database, kalkan.yaml and
the school CA (its private key encrypted with a passphrase).

Layout of ``kalkan-backup-<school>-<UTC time>.tar.gz``::

    manifest.json          format, kalkan version, time, school, what is inside, SHA-256 of each
    database/kalkan.db     SQLite, copied with the online backup API (consistent while in use)
    database/kalkan.sql    or PostgreSQL, as pg_dump wrote it
    config/kalkan.yaml     the configuration file in force
    ca/kalkan-ca.pem       the CA certificate
    ca/kalkan-ca.key       its private key, PKCS#8 encrypted with the passphrase (absent in a
                           nightly backup without backup.passphrase_file)

A restore checks every checksum and the passphrase before it touches anything, then writes
each file beside its destination and renames it over the old one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from sqlalchemy.engine import make_url

from gateway.config import Config
from policies.errors import KalkanError

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/kalkan.db"
POSTGRES_MEMBER = "database/kalkan.sql"
CONFIG_MEMBER = "config/kalkan.yaml"
CA_CERT_MEMBER = "ca/kalkan-ca.pem"
CA_KEY_MEMBER = "ca/kalkan-ca.key"
PREFIX = "kalkan-backup-"
SUFFIX = ".tar.gz"


class BackupError(KalkanError):
    """An archive that cannot be made or restored; the message says which and why."""


@dataclass(frozen=True)
class Manifest:
    created: str
    school_id: str
    database: str | None  # "sqlite", "postgresql" or None (no database in the archive)
    files: dict[str, str] = field(default_factory=dict)  # member name -> SHA-256 hex
    ca_key: str = "absent"  # "encrypted", "omitted" (nightly, no passphrase) or "absent"
    kalkan_version: str = ""

    def to_json(self) -> bytes:
        return json.dumps({"format": FORMAT, **self.__dict__}, indent=2, sort_keys=True).encode()


def sqlite_path(config: Config) -> Path | None:
    """The SQLite file of this installation, None if the database is PostgreSQL."""
    url = make_url(config.database_url)
    if url.get_backend_name() != "sqlite":
        return None
    return Path(url.database or "")


def _libpq_url(config: Config) -> str:
    # pg_dump and psql speak libpq: no "+psycopg" driver part in the scheme.
    return make_url(config.database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kalkan")
    except PackageNotFoundError:
        return "unknown"


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the writers keep writing meanwhile)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def create_backup(config: Config, target: Path | None = None, *,
                  config_file: Path | None = None, passphrase: bytes | None = None,
                  now: dt.datetime | None = None) -> Path:
    """Write the archive to ``target`` (a file, or a directory for the usual name) and return
    its path. Without ``passphrase`` the CA private key is left out, and the manifest says so."""
    now = now or dt.datetime.now(dt.UTC)
    name = f"{PREFIX}{config.school_id}-{now:%Y%m%dT%H%M%SZ}{SUFFIX}"
    target = Path(target) if target is not None else config.backup_dir
    if target.is_dir() or not target.name.endswith(SUFFIX):  # a directory, made if missing
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = target / name
    members: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="kalkan-backup-") as scratch:
        db_kind = _dump_database(config, Path(scratch), members)
        if config_file is not None and config_file.is_file():
            members[CONFIG_MEMBER] = config_file.read_bytes()
        ca_key = _add_ca(config, members, passphrase)
        manifest = Manifest(created=now.isoformat(timespec="seconds"),
                            school_id=config.school_id, database=db_kind,
                            files={n: hashlib.sha256(b).hexdigest() for n, b in members.items()},
                            ca_key=ca_key, kalkan_version=_version())
        _write_archive(target, manifest, members)
    return target


def _dump_database(config: Config, scratch: Path, members: dict[str, bytes]) -> str | None:
    path = sqlite_path(config)
    if path is not None:
        if not path.exists():
            return None
        copy = scratch / "kalkan.db"
        try:
            copy_sqlite(path, copy)
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"cannot read the database {path}: {exc}",
                              hint="if it is damaged, restore the last good backup with "
                                   "`kalkan restore FILE`") from None
        members[SQLITE_MEMBER] = copy.read_bytes()
        return "sqlite"
    if shutil.which("pg_dump") is None:
        raise BackupError("pg_dump is not installed, so the PostgreSQL database cannot be "
                          "backed up", hint="apt-get install postgresql-client")
    done = subprocess.run(["pg_dump", "--no-owner", "--clean", "--if-exists",
                           "--dbname", _libpq_url(config)], capture_output=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.decode(errors='replace').strip()}",
                          hint="check database.url in kalkan.yaml and that the server answers")
    members[POSTGRES_MEMBER] = done.stdout
    return "postgresql"


def _add_ca(config: Config, members: dict[str, bytes], passphrase: bytes | None) -> str:
    from gateway.proxy.ca import CERT_FILE, KEY_FILE, ca_dir

    directory = ca_dir(config.data_dir)
    if not (directory / CERT_FILE).exists():
        return "absent"
    members[CA_CERT_MEMBER] = (directory / CERT_FILE).read_bytes()
    if passphrase is None:
        return "omitted"
    key = serialization.load_pem_private_key((directory / KEY_FILE).read_bytes(), None)
    members[CA_KEY_MEMBER] = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase))
    return "encrypted"


def _write_archive(target: Path, manifest: Manifest, members: dict[str, bytes]) -> None:
    # Written under a temporary name and renamed: a half-written archive never looks like a
    # backup to the start-up check that restores the newest one.
    tmp = target.with_name(f".{target.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, data in [(MANIFEST, manifest.to_json()), *members.items()]:
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o600
                info.mtime = int(dt.datetime.now(dt.UTC).timestamp())
                tar.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- reading an archive --------------------------------------------------------------------

@dataclass(frozen=True)
class Archive:
    """A checked archive held in memory: every member matches its checksum."""

    path: Path
    manifest: Manifest
    members: dict[str, bytes]


def read_archive(path: Path) -> Archive:
    """Open and check ``path``; :class:`BackupError` says what is wrong with it."""
    corrupt = "use another backup (`ls` the backup directory), or make a new one"
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            members: dict[str, bytes] = {}
            for info in tar:
                if not info.isfile() or info.name.startswith("/") or ".." in info.name.split("/"):
                    raise BackupError(f"{path}: unexpected entry {info.name!r}", hint=corrupt)
                data = tar.extractfile(info)
                members[info.name] = data.read() if data is not None else b""
    except FileNotFoundError:
        raise BackupError(f"{path}: no such file", hint="give the path of a kalkan backup "
                          "archive (kalkan-backup-….tar.gz)") from None
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BackupError(f"{path} is not a readable kalkan backup (damaged or cut short: "
                          f"{exc})", hint=corrupt) from None
    try:
        raw = json.loads(members.pop(MANIFEST))
        if raw.pop("format") != FORMAT:
            raise BackupError(f"{path}: backup format {raw.get('format')} is not known to this "
                              "kalkan", hint="restore it with the kalkan version that made it")
        manifest = Manifest(**raw)
    except (KeyError, ValueError, TypeError) as exc:
        raise BackupError(f"{path} has no valid manifest ({exc})", hint=corrupt) from None
    if set(members) != set(manifest.files):
        raise BackupError(f"{path}: the files in the archive do not match its manifest "
                          f"(missing {sorted(set(manifest.files) - set(members))}, extra "
                          f"{sorted(set(members) - set(manifest.files))})", hint=corrupt)
    for name, data in members.items():
        if hashlib.sha256(data).hexdigest() != manifest.files[name]:
            raise BackupError(f"{path}: {name} does not match its checksum: the archive is "
                              "damaged", hint=corrupt)
    return Archive(path, manifest, members)


def list_backups(directory: Path) -> list[Path]:
    """The finished archives in ``directory``, newest first (the name holds the UTC time)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.name.startswith(PREFIX)
             and p.name.endswith(SUFFIX) and p.is_file()]
    return sorted(found, key=lambda p: (p.name.rsplit("-", 1)[-1], p.stat().st_mtime),
                  reverse=True)


def prune_backups(directory: Path, keep_days: int, now: dt.datetime | None = None) -> list[Path]:
    """Delete archives older than ``keep_days``, but never the newest one."""
    now = now or dt.datetime.now(dt.UTC)
    removed = []
    for path in list_backups(directory)[1:]:
        age = now.timestamp() - path.stat().st_mtime
        if age > keep_days * 86400:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# --- restoring -----------------------------------------------------------------------------

def sqlite_problem(path: Path) -> str | None:
    """What ``PRAGMA quick_check`` finds wrong with an SQLite file, None if it is sound."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows[:3])


def restore_backup(config: Config, archive: Archive, *, config_file: Path | None,
                   passphrase: bytes | None = None, database: bool = True) -> list[str]:
    """Put the archive's contents in place; returns what was restored, in words.

    Everything is checked first (checksums already; the passphrase and the database here),
    then each file is written beside its destination and renamed over it.
    """
    staged: list[tuple[Path, Path]] = []  # (temporary file, destination)
    done: list[str] = []
    try:
        key_pem = _decrypt_ca_key(archive, passphrase)
        if database and archive.manifest.database == "sqlite":
            target = sqlite_path(config)
            if target is None:
                raise BackupError("the archive holds an SQLite database but database.url in "
                                  "kalkan.yaml is PostgreSQL", hint="restore it into an SQLite "
                                  "installation, or use --no-database")
            tmp = _stage(target, archive.members[SQLITE_MEMBER], 0o640, staged)
            problem = sqlite_problem(tmp)
            if problem:
                raise BackupError(f"{archive.path}: the database in it is damaged: {problem}",
                                  hint="use an older backup")
            done.append(f"database {target}")
        if config_file is not None and CONFIG_MEMBER in archive.members:
            _stage(config_file, archive.members[CONFIG_MEMBER], 0o640, staged)
            done.append(f"configuration {config_file}")
        if CA_CERT_MEMBER in archive.members:
            from gateway.proxy.ca import CERT_FILE, KEY_FILE, MITMPROXY_FILE, ca_dir

            directory = ca_dir(config.data_dir)
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            cert = archive.members[CA_CERT_MEMBER]
            _stage(directory / CERT_FILE, cert, 0o644, staged)
            if key_pem is not None:
                _stage(directory / KEY_FILE, key_pem, 0o600, staged)
                _stage(directory / MITMPROXY_FILE, key_pem + cert, 0o600, staged)
                done.append(f"school CA with its key in {directory}")
            else:
                done.append(f"school CA certificate (no key in this backup) in {directory}")
        if database and archive.manifest.database == "postgresql":
            _restore_postgres(config, archive.members[POSTGRES_MEMBER])
            done.append("PostgreSQL database")
        for tmp, target in staged:
            if target == sqlite_path(config):
                # The old WAL belongs to the old file: replayed over the new one, it would
                # corrupt it.
                for suffix in ("-wal", "-shm"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)
            os.replace(tmp, target)
        staged.clear()
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
    return done


def _stage(target: Path, data: bytes, mode: int, staged: list[tuple[Path, Path]]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restoring")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    staged.append((tmp, target))
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    # The owner of the file it replaces, else of its directory: the kalkan user must be
    # able to open what root restored.
    st = target.stat() if target.exists() else target.parent.stat()
    if os.geteuid() == 0:
        with contextlib.suppress(PermissionError):
            os.chown(tmp, st.st_uid, st.st_gid)
    return tmp


def _decrypt_ca_key(archive: Archive, passphrase: bytes | None) -> bytes | None:
    encrypted = archive.members.get(CA_KEY_MEMBER)
    if encrypted is None:
        return None
    if passphrase is None:
        raise BackupError(f"{archive.path} holds the school CA key, encrypted: a passphrase "
                          "is needed", hint="give --passphrase-file FILE, or run it on a "
                                            "terminal to be asked")
    try:
        key = serialization.load_pem_private_key(encrypted, passphrase)
    except (ValueError, TypeError):  # cryptography says "Bad decrypt" and no more
        raise BackupError("wrong passphrase for the school CA key in this backup; nothing was "
                          "restored",
                          hint="give the passphrase used when the backup was made") from None
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _restore_postgres(config: Config, dump: bytes) -> None:
    if shutil.which("psql") is None:
        raise BackupError("psql is not installed, so the PostgreSQL dump cannot be restored",
                          hint="apt-get install postgresql-client")
    done = subprocess.run(["psql", "--quiet", "--single-transaction", "-v", "ON_ERROR_STOP=1",
                           "--dbname", _libpq_url(config)], input=dump, capture_output=True,
                          check=False)
    if done.returncode != 0:
        raise BackupError(f"psql refused the dump: {done.stderr.decode(errors='replace')}",
                          hint="nothing was changed in PostgreSQL (one transaction)")
