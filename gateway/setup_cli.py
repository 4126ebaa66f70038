"""``kalkan setup``, ``kalkan uninstall``, ``kalkan upgrade``: kalkan as a service of the router.

``install.sh`` makes the virtualenv in /opt/kalkan and pip-installs the checkout into it, then
runs ``kalkan setup``, which does the rest, each step only if it is not done already (a second
run changes nothing and says so): the system user, /etc/kalkan/kalkan.yaml (asked on a
terminal, or from the options), /var/lib/kalkan, the database, the systemd units under
``kalkan.target`` and a ``kalkan`` command on the PATH. The unit templates are in
deploy/systemd/ (installed as share/kalkan/systemd in the virtualenv).
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click

from gateway.cli import State, pass_state, reports_errors
from policies.errors import KalkanError

USER = "kalkan"
UNIT_DIR = Path("/etc/systemd/system")
UNITS = ("kalkan.target", "kalkan-firewall.service", "kalkan-dns.service",
         "kalkan-proxy.service", "kalkan-admin.service", "kalkan-worker.service")
COMMAND_LINK = Path("/usr/local/bin/kalkan")
LANGUAGES = ("ky", "ru", "kk", "uz", "en")
TRANSPARENT_LISTEN = "0.0.0.0:8443"
ALL_INTERFACES_DNS = ("0.0.0.0:53",)


@dataclass
class Report:
    """What a run changed, so that a second run can say "nothing changed"."""

    changes: list[str] = field(default_factory=list)

    def changed(self, what: str) -> None:
        self.changes.append(what)
        click.echo(f"  changed: {what}")


def _run(args: list[str], *, check: bool = True, quiet: bool = False,
         user: str | None = None) -> subprocess.CompletedProcess[str]:
    if user is not None:
        args = ["runuser", "-u", user, "--", *args]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise KalkanError(f"`{' '.join(args)}` failed: {(done.stderr or done.stdout).strip()}",
                          hint="fix the cause above and run the command again; what is done "
                               "stays done")
    if not quiet and done.stdout.strip() and user is not None:
        click.echo("  " + done.stdout.strip().replace("\n", "\n  "))
    return done


def _require_root() -> None:
    if os.geteuid() != 0:
        raise KalkanError("this changes the system: run it as root", hint="sudo kalkan ...")


def templates_dir() -> Path:
    """The unit templates: installed beside the virtualenv, or deploy/ of a checkout."""
    for candidate in (Path(sys.prefix) / "share" / "kalkan" / "systemd",
                      Path(__file__).resolve().parent.parent / "deploy" / "systemd"):
        if (candidate / "kalkan.target").exists():
            return candidate
    raise KalkanError("the systemd unit templates are missing",
                      hint="reinstall with ./install.sh from the kalkan source tree")


# --- pieces -----------------------------------------------------------------------------

def ensure_user(data_dir: Path, report: Report) -> None:
    try:
        pwd.getpwnam(USER)
        return
    except KeyError:
        pass
    _run(["useradd", "--system", "--user-group", "--home-dir", str(data_dir), "--no-create-home",
          "--shell", "/usr/sbin/nologin", "--comment", "kalkan filtering gateway", USER])
    report.changed(f"system user {USER}")


def ensure_directory(path: Path, owner: str, group: str, mode: int, report: Report) -> None:
    uid, gid = pwd.getpwnam(owner).pw_uid, pwd.getpwnam(group).pw_gid
    if not path.is_dir():
        path.mkdir(parents=True)
        report.changed(f"directory {path}")
    st = path.stat()
    if (st.st_uid, st.st_gid, st.st_mode & 0o7777) != (uid, gid, mode):
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        report.changed(f"owner and mode of {path}")


def write_if_changed(path: Path, text: str, mode: int, report: Report, *,
                     group: str | None = None) -> bool:
    """Write ``text`` only if the file differs: checksums stay, mtimes too."""
    data = text.encode()
    if path.exists() and path.read_bytes() == data:
        return False
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_bytes(data)
    os.chmod(tmp, mode)
    if group is not None:
        os.chown(tmp, 0, pwd.getpwnam(group).pw_gid)
    os.replace(tmp, path)
    report.changed(str(path))
    return True


@dataclass(frozen=True)
class Answers:
    """What the school tells setup; None keeps kalkan.yaml's default."""

    school_id: str | None = None
    language: str | None = None
    networks: tuple[str, ...] = ()
    upstreams: tuple[str, ...] = ()
    dns_listen: tuple[str, ...] = ()
    admin_listen: str | None = None
    proxy_listen: str | None = None


def config_text(answers: Answers, data_dir: Path) -> str:
    """kalkan.yaml with the answers put in (the commented default, as ``kalkan init`` writes)."""
    from gateway.config import _replace_line, default_config_text, parse_config

    text = _replace_line(default_config_text(), "data_dir", json.dumps(str(data_dir)))
    if answers.school_id:
        text = _replace_line(text, "school_id", answers.school_id)
    if answers.language:
        text = _replace_line(text, "language", answers.language)
    # Redirected classroom queries must reach DNS: with classroom networks and no address
    # given, every IPv4 interface (dns.allowed_clients still keeps strangers out).
    dns_listen = answers.dns_listen or (ALL_INTERFACES_DNS if answers.networks else ())
    if dns_listen:
        text = _replace_block(text, '    - "127.0.0.1:53"\n    - "[::1]:53"', dns_listen)
    if answers.upstreams:
        text = _replace_block(text, "    - 9.9.9.9\n    - 1.1.1.1", answers.upstreams)
    if answers.networks:  # classroom networks outside the private ranges must be let in too
        extra = [n for n in answers.networks if not _in_defaults(n)]
        if extra:
            text = text.replace("    - fe80::/10\n", "    - fe80::/10\n"
                                + "".join(f"    - {n}\n" for n in extra), 1)
    if answers.admin_listen:
        text = text.replace('  listen: "127.0.0.1:8080"',
                            f"  listen: {json.dumps(answers.admin_listen)}", 1)
    if answers.networks:  # the firewall redirects the classrooms' web traffic here
        text = text.replace("  transparent_listen: null",
                            f"  transparent_listen: {json.dumps(TRANSPARENT_LISTEN)}", 1)
    if answers.proxy_listen:
        text = text.replace('  listen: "127.0.0.1:3128"',
                            f"  listen: {json.dumps(answers.proxy_listen)}", 1)
    parse_config(text, "kalkan.yaml (from setup's answers)")  # refuse before writing
    return text


def _replace_block(text: str, old: str, values: tuple[str, ...]) -> str:
    if old not in text:
        raise RuntimeError(f"kalkan.default.yaml no longer has {old!r}")
    return text.replace(old, "\n".join(f"    - {json.dumps(v)}" for v in values), 1)


def _in_defaults(network: str) -> bool:
    from gateway.config import DEFAULT_ALLOWED_CLIENTS

    net = ipaddress.ip_network(network, strict=False)
    return any(net.version == d.version and net.subnet_of(d)  # type: ignore[arg-type]
               for d in map(ipaddress.ip_network, DEFAULT_ALLOWED_CLIENTS))


def ask(answers: Answers) -> Answers:
    """Questions on the terminal, each with the option's value (or the default) offered."""
    click.echo("kalkan setup: a few questions (Enter keeps the value in brackets)")
    school = click.prompt("School id (latin letters, digits, - and _)",
                          default=answers.school_id or "school")
    language = click.prompt("Language of the pages", type=click.Choice(LANGUAGES),
                            default=answers.language or "ky")
    networks = click.prompt("Classroom networks (CIDR, separated by spaces)",
                            default=" ".join(answers.networks) or "192.168.1.0/24")
    upstreams = click.prompt("Upstream DNS resolvers", default=" ".join(answers.upstreams)
                             or "9.9.9.9 1.1.1.1")
    dns_listen = click.prompt("DNS listens on (IP:port; the router's classroom address)",
                              default=" ".join(answers.dns_listen) or "0.0.0.0:53")
    admin = click.prompt("Admin pages on (IP:port)", default=answers.admin_listen
                         or "127.0.0.1:8080")
    return Answers(school, language, tuple(networks.split()), tuple(upstreams.split()),
                   tuple(dns_listen.split()), admin, answers.proxy_listen)


def render_units(templates: Path, *, prefix: Path, config: Path, data_dir: Path,
                 writable: list[Path], networks: tuple[str, ...],
                 interface: str | None) -> dict[str, str]:
    hardening = "\n".join(line for line in (templates / "hardening.conf").read_text().splitlines()
                          if line and not line.startswith("#"))
    firewall_args = "".join(f" --network {n}" for n in networks)
    if interface:
        firewall_args += f" --interface {interface}"
    values = {"@HARDENING@": hardening, "@PREFIX@": str(prefix), "@CONFIG@": str(config),
              "@DATA@": str(data_dir), "@WRITABLE@": " ".join(map(str, writable)),
              "@FIREWALL_ARGS@": firewall_args}
    units = {}
    for name in UNITS:
        text = (templates / name).read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        units[name] = text
    return units


def _firewall_args_of(unit: Path) -> tuple[tuple[str, ...], str | None]:
    """The networks and interface of an installed firewall unit (kept on a re-run)."""
    if not unit.exists():
        return (), None
    words = next((line.split() for line in unit.read_text().splitlines()
                  if line.startswith("ExecStart=")), [])
    nets = tuple(words[i + 1] for i, w in enumerate(words[:-1]) if w == "--network")
    iface = next((words[i + 1] for i, w in enumerate(words[:-1]) if w == "--interface"), None)
    return nets, iface


# --- commands ---------------------------------------------------------------------------

@click.command("setup")
@click.option("--school-id", default=None, help="A short name for the school.")
@click.option("--language", type=click.Choice(LANGUAGES), default=None)
@click.option("--network", "networks", multiple=True, metavar="CIDR",
              help="A classroom network (repeat); the firewall sends its DNS and web to kalkan.")
@click.option("--interface", default=None, metavar="NAME",
              help="The classroom-side interface (firewall rules only for traffic entering it).")
@click.option("--upstream", "upstreams", multiple=True, metavar="ADDR",
              help="An upstream DNS resolver (repeat).")
@click.option("--dns-listen", multiple=True, metavar="IP:PORT", help="Where DNS listens (repeat).")
@click.option("--admin-listen", default=None, metavar="IP:PORT")
@click.option("--proxy-listen", default=None, metavar="IP:PORT")
@click.option("--config-file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("/etc/kalkan/kalkan.yaml"), show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("/var/lib/kalkan"), show_default=True)
@click.option("--reconfigure", is_flag=True,
              help="Write kalkan.yaml again from the answers (default: keep the existing file).")
@click.option("--yes", "-y", "assume_yes", is_flag=True, help="Ask nothing (not on a terminal "
                                                                "this is the default).")
@click.option("--no-start", is_flag=True, help="Install and enable, but do not start now.")
@reports_errors
def setup(school_id: str | None, language: str | None, networks: tuple[str, ...],
          interface: str | None, upstreams: tuple[str, ...], dns_listen: tuple[str, ...],
          admin_listen: str | None, proxy_listen: str | None, config_file: Path,
          data_dir: Path, reconfigure: bool, assume_yes: bool, no_start: bool) -> None:
    """Make this router a kalkan gateway: user, configuration, data, systemd units (run by
    install.sh; run it again any time: what is already done is left as it is)."""
    _require_root()
    prefix = Path(sys.prefix)
    report = Report()
    click.echo(f"kalkan setup: kalkan from {prefix}, configuration {config_file}, "
               f"data {data_dir}")
    answers = Answers(school_id, language, networks, upstreams, dns_listen, admin_listen,
                      proxy_listen)
    fresh = reconfigure or not config_file.exists()
    if fresh and not assume_yes and sys.stdin.isatty():
        answers = ask(answers)
    ensure_user(data_dir, report)
    ensure_directory(config_file.parent, "root", USER, 0o750, report)
    ensure_directory(data_dir, USER, USER, 0o750, report)
    if fresh:
        write_if_changed(config_file, config_text(answers, data_dir), 0o640, report, group=USER)
    else:
        click.echo(f"  kept {config_file} (edit it, or --reconfigure to write it from answers)")
    from gateway.config import load_config

    config = load_config(config_file)
    # The database and the blocklist index are made now, as the kalkan user: the first boot
    # then starts filtering in seconds, and every file in data_dir belongs to that user.
    kalkan = str(prefix / "bin" / "kalkan")
    new_database = not (config.data_dir / "kalkan.db").exists() and config.database.url is None
    _run([kalkan, "--config", str(config_file), "db", "upgrade"], user=USER, quiet=True)
    from blocklists.update import index_path

    if not index_path(config.data_dir).exists():
        _run([kalkan, "--config", str(config_file), "blocklists", "update"], user=USER,
             quiet=True)
        report.changed(f"blocklist index {index_path(config.data_dir)}")
    if new_database:
        report.changed(f"database {config.data_dir / 'kalkan.db'}")
    unit_nets, unit_iface = _firewall_args_of(UNIT_DIR / "kalkan-firewall.service")
    writable = [config.data_dir] + ([config.backup_dir] if config.backup.directory else [])
    units = render_units(templates_dir(), prefix=prefix, config=config_file,
                         data_dir=config.data_dir, writable=writable,
                         networks=answers.networks or unit_nets, interface=interface or unit_iface)
    units_changed = False
    for name, text in units.items():
        units_changed |= write_if_changed(UNIT_DIR / name, text, 0o644, report)
    write_if_changed(COMMAND_LINK, command_wrapper(prefix, config_file), 0o755, report)
    if units_changed:
        _run(["systemctl", "daemon-reload"])
    if _run(["systemctl", "is-enabled", "--quiet", "kalkan.target"], check=False).returncode:
        _run(["systemctl", "enable", "--quiet", *UNITS])
        report.changed("enabled kalkan.target at boot")
    if not no_start and (units_changed or _run(["systemctl", "is-active", "--quiet",
                                                 "kalkan.target"], check=False).returncode):
        restart = "restart" if units_changed else "start"
        # The firewall alone may fail (no classroom network yet): the services still start,
        # and the message says what to do.
        firewall = _run(["systemctl", restart, "kalkan-firewall.service"], check=False)
        if firewall.returncode:
            click.echo("  warning: the firewall rules were not applied: "
                       + _last_error("kalkan-firewall.service"))
        _run(["systemctl", restart, "kalkan.target", *UNITS[2:]])
        report.changed(f"{restart}ed kalkan.target")
    if report.changes:
        click.echo(f"kalkan setup: done, {len(report.changes)} change(s)")
    else:
        click.echo("kalkan setup: nothing changed (already installed like this)")
    click.echo(f"  status: kalkan status · admin: http://{config.admin.listen}/ · logs: "
               "journalctl -u 'kalkan-*'")


def _last_error(unit: str) -> str:
    done = _run(["journalctl", "-u", unit, "-n", "5", "-o", "cat", "--no-pager"], check=False,
                quiet=True)
    lines = [line for line in done.stdout.splitlines() if "error" in line or "→" in line]
    return " ".join(lines[-2:]) or f"see journalctl -u {unit}"


def command_wrapper(prefix: Path, config_file: Path) -> str:
    # As root, everyday commands run as the kalkan user, so that no file in data_dir ends up
    # owned by root (the services could not open it); the commands that change the system
    # stay root.
    return f"""#!/bin/sh
# kalkan command, written by `kalkan setup` (removed by `kalkan uninstall`).
export KALKAN_CONFIG="${{KALKAN_CONFIG:-{config_file}}}"
if [ "$(id -u)" = 0 ]; then
  case "${{1:-}}" in
    setup|uninstall|upgrade|restore|firewall|-h|--help|--version|"") ;;
    *) exec runuser -u {USER} -- {prefix}/bin/kalkan "$@" ;;
  esac
fi
exec {prefix}/bin/kalkan "$@"
"""


@click.command("uninstall")
@click.option("--purge", is_flag=True,
              help="Also delete /var/lib/kalkan (database, logs, CA, backups) and /etc/kalkan.")
@click.option("--keep-data", is_flag=True, help="Keep data and configuration without asking.")
@click.option("--config-file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("/etc/kalkan/kalkan.yaml"), show_default=True)
@reports_errors
def uninstall(purge: bool, keep_data: bool, config_file: Path) -> None:
    """Remove what setup added: units, firewall table, user, /opt/kalkan and the command."""
    _require_root()
    from gateway.config import Config, load_config
    from gateway.firewall import TABLE

    prefix = Path(sys.prefix)
    config = load_config(config_file) if config_file.exists() else Config()
    installed = [n for n in UNITS if (UNIT_DIR / n).exists()]
    if installed:
        _run(["systemctl", "disable", "--now", "--quiet", *installed], check=False)
        for name in installed:
            (UNIT_DIR / name).unlink()
            click.echo(f"  removed {UNIT_DIR / name}")
        _run(["systemctl", "daemon-reload"], check=False)
        _run(["systemctl", "reset-failed", *installed], check=False, quiet=True)
    if shutil.which("nft") and _run(["nft", "list", "table", "inet", TABLE], check=False,
                                    quiet=True).returncode == 0:
        _run(["nft", "delete", "table", "inet", TABLE])
        click.echo(f"  removed the nftables table inet {TABLE}")
    if COMMAND_LINK.exists() and "kalkan setup" in COMMAND_LINK.read_text(errors="replace"):
        COMMAND_LINK.unlink()
        click.echo(f"  removed {COMMAND_LINK}")
    delete_data = purge
    if not purge and not keep_data and sys.stdin.isatty():
        delete_data = click.confirm(f"Delete the data in {config.data_dir} (database, logs, "
                                    f"school CA, backups) and {config_file.parent}?",
                                    default=False)
    if delete_data:
        for path in (config.data_dir, config_file.parent):
            if path.exists():
                shutil.rmtree(path)
                click.echo(f"  removed {path}")
    else:
        click.echo(f"  kept {config.data_dir} and {config_file.parent} (--purge deletes them)")
    try:
        pwd.getpwnam(USER)
        _run(["userdel", USER])
        click.echo(f"  removed the system user {USER}")
    except KeyError:
        pass
    if (prefix / "bin" / "kalkan").exists() and prefix != Path("/usr"):
        # Last: this very program runs from there (Linux keeps the open files until exit).
        shutil.rmtree(prefix)
        click.echo(f"  removed {prefix}")
    click.echo("kalkan uninstall: done")


@click.command("upgrade")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@pass_state
@reports_errors
def upgrade(state: State, source: Path) -> None:
    """Back up, install the kalkan source tree SOURCE into this virtualenv, migrate the
    database and restart the services."""
    _require_root()
    config = state.config
    prefix = Path(sys.prefix)
    args = [str(prefix / "bin" / "kalkan")]
    if state.config_path:
        args += ["--config", state.config_path]
    # As the kalkan user, so that the backup directory stays writable for the nightly ones.
    key = (["--passphrase-file", str(config.backup.passphrase_file)]
           if config.backup.passphrase_file else ["--no-ca-key"])
    made = _run([*args, "backup", *key], user=USER, quiet=True)
    click.echo(f"kalkan upgrade: {made.stdout.strip()} (`kalkan restore` it if anything goes "
               "wrong)")
    _run([str(prefix / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
          str(source)])
    click.echo(f"kalkan upgrade: installed {source} into {prefix}")
    active = _run(["systemctl", "is-active", "--quiet", "kalkan.target"],
                  check=False).returncode == 0
    if active:
        _run(["systemctl", "stop", "kalkan.target", *UNITS[1:]])
    _run([*args, "db", "upgrade"], user=USER)
    _run([*args, "setup", "--yes", "--no-start"])  # new unit templates, if any
    if active:
        _run(["systemctl", "start", "kalkan.target"])
        click.echo("kalkan upgrade: services restarted")

