"""``kalkan backup`` and ``kalkan restore``: database, configuration and school CA."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from gateway.cli import State, pass_state, reports_errors
from policies.errors import KalkanError


def _passphrase(file: Path | None, *, confirm: bool, needed: bool) -> bytes | None:
    """From --passphrase-file, else asked on the terminal; None when not needed."""
    if file is not None:
        try:
            text = file.read_bytes().strip()
        except OSError as exc:
            raise KalkanError(f"cannot read the passphrase file {file}: {exc.strerror}",
                              hint="give a file the current user may read") from None
        if not text:
            raise KalkanError(f"the passphrase file {file} is empty",
                              hint="write the passphrase in it, on one line")
        return text
    if not needed:
        return None
    if not sys.stdin.isatty():
        raise KalkanError("a passphrase is needed for the school CA key, and there is no "
                          "terminal to ask on", hint="give --passphrase-file FILE (or "
                          "--no-ca-key to leave the key out of the backup)")
    text = click.prompt("passphrase for the school CA key", hide_input=True,
                        confirmation_prompt=confirm)
    return text.encode()


@click.command("backup")
@click.option("--to", "target", type=click.Path(path_type=Path), default=None,
              help="Archive file (….tar.gz) or directory (default: backup.directory, else "
                   "data_dir/backups).")
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Encrypt the CA key with the passphrase in this file "
                                 "(default: ask on the terminal).")
@click.option("--no-ca-key", is_flag=True, help="Leave the school CA private key out.")
@pass_state
@reports_errors
def backup(state: State, target: Path | None, passphrase_file: Path | None,
           no_ca_key: bool) -> None:
    """Write one archive with the database, kalkan.yaml and the school CA (key encrypted)."""
    from gateway.backup import create_backup
    from gateway.config import find_config_path
    from gateway.proxy.ca import KEY_FILE, ca_dir

    config = state.config
    has_key = (ca_dir(config.data_dir) / KEY_FILE).exists() and not no_ca_key
    passphrase = None if no_ca_key else _passphrase(passphrase_file, confirm=True,
                                                     needed=has_key)
    path = create_backup(config, target, config_file=find_config_path(state.config_path),
                         passphrase=passphrase)
    click.echo(f"kalkan backup: wrote {path}")


def _kalkan_running() -> bool:
    if shutil.which("systemctl") is None:
        return False
    done = subprocess.run(["systemctl", "is-active", "--quiet", "kalkan.target"], check=False)
    return done.returncode == 0


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--passphrase-file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The passphrase of the CA key (default: ask on the terminal).")
@click.option("--no-database", is_flag=True, help="Leave the database as it is.")
@click.option("--no-config", is_flag=True, help="Leave kalkan.yaml as it is.")
@click.option("--force", is_flag=True, help="Restore even while kalkan.target is running.")
@pass_state
@reports_errors
def restore(state: State, archive: Path, passphrase_file: Path | None, no_database: bool,
            no_config: bool, force: bool) -> None:
    """Check ARCHIVE (checksums, passphrase) and put its contents back, all or nothing."""
    from gateway.backup import CA_KEY_MEMBER, read_archive, restore_backup
    from gateway.config import find_config_path

    checked = read_archive(archive)  # a damaged archive stops here, before any question
    if _kalkan_running() and not force:
        raise KalkanError("kalkan is running: its processes would keep the old database open",
                          hint="`systemctl stop kalkan.target`, restore, then "
                               "`systemctl start kalkan.target`")
    passphrase = _passphrase(passphrase_file, confirm=False,
                             needed=CA_KEY_MEMBER in checked.members)
    config_file = None if no_config else (find_config_path(state.config_path)
                                          or Path("/etc/kalkan/kalkan.yaml"))
    done = restore_backup(state.config, checked, config_file=config_file,
                          passphrase=passphrase, database=not no_database)
    click.echo(f"kalkan restore: from {archive} (made {checked.manifest.created}, school "
               f"{checked.manifest.school_id}):")
    for line in done:
        click.echo(f"  restored {line}")
    if not done:
        click.echo("  nothing to restore")
