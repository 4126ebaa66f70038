"""The ``kalkan`` command line. Each command is a thin shell over a function the tests call."""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import ipaddress
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy.orm import Session, sessionmaker

from policies.errors import KalkanError

if TYPE_CHECKING:
    from gateway.config import Config


class State:
    """What every command needs: the configuration and, lazily, the database."""

    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: Any = None
        self._sessions: sessionmaker[Session] | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from gateway.config import load_or_default

            self._config = load_or_default(self.config_path)
        return self._config

    @property
    def sessions(self) -> sessionmaker[Session]:
        if self._sessions is None:
            from gateway.bootstrap import open_database

            self._sessions = open_database(self.config)
        return self._sessions


pass_state = click.make_pass_decorator(State)


def reports_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a :class:`KalkanError` as ``error: …`` with its hint, exit 2, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KalkanError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)

    return wrapper


def _author() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="KALKAN_CONFIG", metavar="PATH",
              help="kalkan.yaml to use (default: $KALKAN_CONFIG, ./kalkan.yaml, "
                   "/etc/kalkan/kalkan.yaml).")
@click.version_option(package_name="kalkan")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """kalkan: internet filtering for schools, as the methodical council decides."""
    ctx.obj = State(config_path)


# --- installation ------------------------------------------------------------------------

@main.command()
@click.option("--path", "path", default=None, metavar="PATH",
              help="Where to write (default: the --config path, else ./kalkan.yaml).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Data directory to put in the file (database, index, journal).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--demo", is_flag=True,
              help="For trying kalkan as a normal user: unprivileged ports on localhost.")
@pass_state
@reports_errors
def init(state: State, path: str | None, data_dir: Path | None, force: bool, demo: bool) -> None:
    """Write a commented default kalkan.yaml."""
    from gateway.config import write_default_config

    target = Path(path or state.config_path or "kalkan.yaml")
    written = write_default_config(target, force=force,
                                   data_dir=data_dir.resolve() if data_dir else None,
                                   unprivileged=demo)
    click.echo(f"wrote {written}; edit it, then run `kalkan db upgrade`")


@main.group()
def db() -> None:
    """The database: create or migrate its schema."""


@db.command("upgrade")
@pass_state
@reports_errors
def db_upgrade(state: State) -> None:
    """Create or migrate the schema; a new database gets the default policy as revision 1."""
    from gateway.bootstrap import ensure_policy

    with state.sessions() as session:
        revision = ensure_policy(session, state.config)
    click.echo(f"database ready at {state.config.database_url} (policy revision {revision})")


@main.command("demo")
@pass_state
@reports_errors
def demo(state: State) -> None:
    """Load the demo school (rooms, classes 1–11, teachers, a council decision, its policy)."""
    from admin_ui.staff import DEMO_PASSWORD, give_demo_passwords
    from policies.demo import seed_demo

    with state.sessions() as session:
        result = seed_demo(session)
        given = give_demo_passwords(session)
    click.echo(f"demo school loaded as policy revision {result.revision.id}")
    if given:
        click.echo(f"demo accounts {', '.join(given)}: password {DEMO_PASSWORD}")


# --- policy as code ----------------------------------------------------------------------

@main.group()
def policy() -> None:
    """The council's policy as one YAML document: export, validate, import, history."""


@policy.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
@pass_state
@reports_errors
def policy_export(state: State, output: Path | None) -> None:
    """Write the whole current policy as YAML."""
    from policies.revisions import export_policy

    with state.sessions() as session:
        text = export_policy(session)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KalkanError(f"{path}: no such file",
                          hint="`kalkan policy export -o FILE` writes a starting point") from None
    except UnicodeDecodeError:
        raise KalkanError(f"{path}: not UTF-8 text", hint="save the file as UTF-8") from None


@policy.command("validate")
@click.argument("file")
@reports_errors
def policy_validate(file: str) -> None:
    """Check FILE without changing anything."""
    from policies.revisions import check_document

    doc = check_document(_read(file), file)
    click.echo(f"{file}: valid ({len(doc.groups)} groups, {len(doc.rooms)} rooms, "
               f"{sum(map(len, doc.category_sites.values()))} category list entries)")


def decision_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--comment", default="", help="What the change is about.")(func)
    func = click.option("--author", default=None, help="Who makes the change (default: you).")(
        func)
    func = click.option("--date", "decision_date", required=True, metavar="YYYY-MM-DD",
                        help="Date of the council decision.")(func)
    return click.option("--protocol", required=True, metavar="N",
                        help="Number of the council protocol that decided this.")(func)


@policy.command("import")
@click.argument("file")
@decision_options
@pass_state
@reports_errors
def policy_import(state: State, file: str, protocol: str, decision_date: str,
                  author: str | None, comment: str) -> None:
    """Validate FILE and apply it as a new revision with its council decision."""
    from policies.decision import CouncilDecision
    from policies.revisions import import_policy

    with state.sessions() as session:
        result = import_policy(session, _read(file), file=file,
                               decision=CouncilDecision(protocol, decision_date),
                               author=author or _author(), comment=comment)
    rev = result.revision
    note = "" if result.changed else " (no rule changed)"
    click.echo(f"policy revision {rev.id} applied{note}: council protocol No {rev.protocol} "
               f"of {rev.decision_date}")


@policy.command("history")
@pass_state
@reports_errors
def policy_history(state: State) -> None:
    """List the revisions, newest last."""
    from policies.revisions import history

    with state.sessions() as session:
        for rev in history(session):
            changes = sum(1 for line in rev.diff.splitlines()
                          if line[:1] in "+-" and line[:3] not in ("+++", "---"))
            click.echo(f"{rev.id:>4}  {rev.created_at:%Y-%m-%d %H:%M} UTC  {rev.author:<12} "
                       f"protocol No {rev.protocol} of {rev.decision_date}  "
                       f"{changes} lines changed  {rev.comment}")


@policy.command("diff")
@click.argument("a", type=int)
@click.argument("b", type=int)
@pass_state
@reports_errors
def policy_diff(state: State, a: int, b: int) -> None:
    """Show what changed from revision A to revision B."""
    from policies.revisions import diff_revisions

    with state.sessions() as session:
        text = diff_revisions(session, a, b)
    click.echo(text or f"revisions {a} and {b} hold the same policy", nl=not text)


@policy.command("rollback")
@click.argument("number", type=int)
@decision_options
@pass_state
@reports_errors
def policy_rollback(state: State, number: int, protocol: str, decision_date: str,
                    author: str | None, comment: str) -> None:
    """Make revision NUMBER's policy current again, as a new revision."""
    from policies.decision import CouncilDecision
    from policies.revisions import rollback

    with state.sessions() as session:
        result = rollback(session, number, decision=CouncilDecision(protocol, decision_date),
                          author=author or _author(), comment=comment)
    click.echo(f"policy revision {result.revision.id} applied: back to revision {number}")


# --- decisions and sessions --------------------------------------------------------------

def parse_at(text: str | None, timezone: ZoneInfo) -> dt.datetime | None:
    """``--at``: ISO date-time (school time unless it has an offset), or ``HH:MM`` today."""
    if text is None:
        return None
    try:
        if len(text) <= 5 and ":" in text:
            hour, minute = (int(x) for x in text.split(":"))
            return dt.datetime.now(timezone).replace(hour=hour, minute=minute, second=0,
                                                     microsecond=0)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise KalkanError(f"--at {text!r} is not a time",
                          hint="write 10:30 (today) or 2026-11-25T10:30, in school time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone)


@main.command()
@click.argument("host")
@click.option("--client", required=True, metavar="IP", help="The asking machine's address.")
@click.option("--url", default=None, help="Full URL, for URL list entries.")
@click.option("--at", "at_text", default=None, metavar="TIME",
              help="When (default: now): 10:30 or 2026-11-25T10:30, school time.")
@pass_state
@reports_errors
def check(state: State, host: str, client: str, url: str | None, at_text: str | None) -> None:
    """Show what the gateway would decide for HOST asked by CLIENT, and why."""
    from gateway.bootstrap import open_engine_for
    from policies.validation import check_host

    check_host(host)
    try:
        ipaddress.ip_address(client.strip("[]"))
    except ValueError:  # the engine would take it for an unknown client, and mislead
        raise KalkanError(f"--client {client!r} is not an IP address",
                          hint="give the asking machine's address, e.g. 10.10.1.101") from None
    engine = open_engine_for(state.config, state.sessions)
    decision = engine.decide(client, host, url, parse_at(at_text, engine.snapshot.timezone))
    click.echo(decision.explain())
    sys.exit(0 if not decision.blocked else 1)


@main.group()
def session() -> None:
    """Teachers' internet sessions for a class in a room."""


@session.command("open")
@click.option("--room", required=True)
@click.option("--teacher", required=True, help="The teacher's user name.")
@click.option("--class", "class_id", default=None, help="The class, e.g. 7B.")
@click.option("--minutes", type=int, default=45, show_default=True)
@click.option("--focus", default=None, help="Only these sites: site1,site2 (focus mode).")
@click.option("--closed", is_flag=True, help="A session in which nothing is allowed.")
@click.option("--seats", default=None, help="Only these seats: 1,2,5.")
@click.option("--allow-downloads", is_flag=True,
              help="The class may download programs and media files (regulation 3.3).")
@pass_state
@reports_errors
def session_open(state: State, room: str, teacher: str, class_id: str | None, minutes: int,
                 focus: str | None, closed: bool, seats: str | None,
                 allow_downloads: bool) -> None:
    """Open internet for a class in a room now."""
    from policies.models import SessionMode
    from policies.sessions import open_session

    sites = [s for s in (focus or "").split(",") if s.strip()]
    if closed and sites:
        raise KalkanError("a session is either closed or focused on some sites, not both",
                          hint="drop --closed or --focus")
    mode = SessionMode.CLOSED if closed else SessionMode.FOCUS if sites else SessionMode.NORMAL
    with state.sessions() as db_session:
        s = open_session(db_session, room=room, teacher=teacher, class_id=class_id,
                         minutes=minutes, mode=mode, focus=sites,
                         seats=[x.strip() for x in (seats or "").split(",") if x.strip()],
                         allow_downloads=allow_downloads)
        downloads = ", downloads allowed" if s.allow_downloads else ""
        click.echo(f"session #{s.id} open in {room} for {class_id or 'the room'} until "
                   f"{_local(s.ends_at, db_session):%H:%M} ({s.mode}{downloads})")


@session.command("close")
@click.argument("session_id", type=int)
@pass_state
@reports_errors
def session_close(state: State, session_id: int) -> None:
    """Close a session now."""
    from policies.sessions import close_session

    with state.sessions() as db_session:
        close_session(db_session, session_id)
    click.echo(f"session #{session_id} closed")


@session.command("extend")
@click.argument("session_id", type=int)
@click.option("--minutes", type=int, default=15, show_default=True)
@pass_state
@reports_errors
def session_extend(state: State, session_id: int, minutes: int) -> None:
    """Give a session more time."""
    from policies.sessions import extend_session

    with state.sessions() as db_session:
        s = extend_session(db_session, session_id, minutes)
        click.echo(f"session #{s.id} now ends at {_local(s.ends_at, db_session):%H:%M}")


@session.command("list")
@click.option("--all", "include_past", is_flag=True, help="Include ended sessions.")
@pass_state
@reports_errors
def session_list(state: State, include_past: bool) -> None:
    """List open and coming sessions."""
    from policies.sessions import list_sessions

    with state.sessions() as db_session:
        rows = list_sessions(db_session, include_past=include_past)
        if not rows:
            click.echo("no open sessions")
        for s in rows:
            focus = f" focus: {', '.join(s.focus_sites)}" if s.focus_sites else ""
            downloads = " downloads allowed" if s.allow_downloads else ""
            click.echo(f"#{s.id:<4} {s.room_id:<10} {s.class_id or '-':<4} "
                       f"{s.teacher.username:<10} {_local(s.starts_at, db_session):%H:%M}–"
                       f"{_local(s.ends_at, db_session):%H:%M} {s.mode}{focus}{downloads}")


def _local(naive_utc: dt.datetime, db_session: Session) -> dt.datetime:
    from sqlalchemy import select

    from policies.models import School

    tz = db_session.scalar(select(School.timezone).limit(1)) or "UTC"
    return naive_utc.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(tz))


# --- running -----------------------------------------------------------------------------

def default_web_processes() -> int:
    from admin_ui.serving import default_processes

    return default_processes()


web_processes_option = click.option(
    "--web-processes", type=click.IntRange(1, 16), default=None, metavar="N",
    help="Processes serving the admin pages (default: one per core, 2 to 4).")


@main.command()
@click.option("--admin-listen", default=None, metavar="HOST:PORT",
              help="Override admin.listen from the configuration.")
@web_processes_option
@pass_state
@reports_errors
def run(state: State, admin_listen: str | None, web_processes: int | None) -> None:
    """Start everything: DNS resolver, proxy, admin pages, log pipeline, nightly updates."""
    from gateway.runner import run_all

    run_all(state.config, state.sessions, admin_listen=admin_listen,
            config_path=state.config_path,
            web_processes=web_processes or default_web_processes())


@main.command()
@click.option("--listen", "admin_listen", default=None, metavar="HOST:PORT",
              help="Override admin.listen from the configuration.")
@click.option("--web-only", is_flag=True,
              help="Only the pages: `kalkan worker` runs the background jobs (as under systemd).")
@web_processes_option
@click.option("--listen-fd", type=int, default=None, hidden=True,
              help="Serve on this inherited socket (the other processes of the admin).")
@pass_state
@reports_errors
def admin(state: State, admin_listen: str | None, web_only: bool, web_processes: int | None,
          listen_fd: int | None) -> None:
    """Serve only the web admin (with the log pipeline, nightly updates and backups)."""
    from gateway.runner import run_all

    run_all(state.config, state.sessions, admin_listen=admin_listen,
            config_path=state.config_path, gateway=False,
            background=not web_only and listen_fd is None,
            web_processes=web_processes or default_web_processes(), listen_fd=listen_fd)


@main.command()
@pass_state
@reports_errors
def worker(state: State) -> None:
    """Run only the background jobs: alerts, notifications, retention, nightly updates and
    backups (kalkan-worker.service)."""
    from gateway.config import find_config_path
    from gateway.worker import run_worker

    run_worker(state.config, state.sessions, find_config_path(state.config_path))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--report", type=click.Choice(["morning", "evening"]), default=None,
              help="Print the morning or evening report as it would be sent, and nothing else.")
@click.option("--language", type=click.Choice(["ky", "ru", "kk", "uz", "en"]), default=None,
              help="The report's language (default: the school's).")
@pass_state
@reports_errors
def status(state: State, as_json: bool, report: str | None, language: str | None) -> None:
    """Is the gateway filtering? Policy, lists, DNS, upstreams, event drops and losses, and
    today's internet, outages and devices."""
    import dataclasses
    import json

    from gateway.health.report import render_report
    from gateway.health.today import render_today, today_status
    from gateway.status import read_status, render_status

    with state.sessions() as db:
        today = today_status(state.config, db)
        if report is not None:
            from policies.models import School

            lang = language or db.query(School.language).scalar() or state.config.language
            click.echo(render_report(report, today.as_dict(), lang)[1])
            return
        current = read_status(state.config, db)
    if as_json:
        click.echo(json.dumps({**dataclasses.asdict(current), "today": today.as_dict()},
                              indent=2, default=str))
    else:
        click.echo("\n".join(render_status(current) + render_today(today)))
    from gateway.database_check import describe_last_restore

    restored = describe_last_restore(state.config)
    if restored and not as_json:
        click.echo(restored)


# --- DNS resolver (issue 6) ----------------------------------------------------------------

@main.command("dns")
@click.option("--listen", "listen", multiple=True, metavar="ADDR:PORT",
              help="Listen here instead of dns.listen (repeat for several; [::1]:53 for IPv6).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes sharing the port (SO_REUSEPORT); one per core is usual.")
@click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Blocklist index file to use (blocklists/index.py).")
@click.option("--rate-limit", "rate", type=click.FloatRange(min=1), default=None,
              metavar="QPS", help="Queries per second one client may send (default 200).")
@click.option("--no-event-writer", "no_writer", is_flag=True, hidden=True,
              help="Benchmarks only: events stay on the in-memory queue, nothing is written.")
@pass_state
@reports_errors
def dns(state: State, listen: tuple[str, ...], workers: int, index_path: Path | None,
        rate: float | None, no_writer: bool) -> None:
    """Run the DNS resolver alone, in the foreground, until Ctrl-C."""
    from sqlalchemy.exc import OperationalError

    from gateway.bootstrap import ensure_policy
    from gateway.config import parse_listen
    from gateway.dns import serve_dns
    from gateway.log_format import configure_logging

    for text in listen:
        try:
            parse_listen(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--listen") from None
    config = state.config
    configure_logging(config.logging.level, config.logging.format)
    try:
        with state.sessions() as db_session:
            ensure_policy(db_session, config)
    except OperationalError:
        if not config.district.url:
            raise
        # A school of a district starts with its saved policy when the district is away.
    categories = None
    if index_path is not None:
        from blocklists.index import open_index

        categories = open_index(index_path)
    shown = ", ".join(listen or config.dns.listen)
    click.echo(f"kalkan: DNS on {shown} with {workers} worker(s) (Ctrl-C to stop)")
    serve_dns(config, state.sessions, workers=workers, listen=listen or None,
              categories=categories, rate=rate, burst=None if rate is None else rate * 5,
              write_events=not no_writer)


# Command groups that live in their own modules (they import State from here).
from gateway.blocklists_cli import blocklists  # noqa: E402
from gateway.ca_cli import ca  # noqa: E402
from gateway.firewall_cli import firewall  # noqa: E402
from gateway.proxy_cli import proxy  # noqa: E402

main.add_command(blocklists)

from gateway.alerts_cli import alerts  # noqa: E402
from gateway.health_cli import health  # noqa: E402
from gateway.logs_cli import logs  # noqa: E402

main.add_command(logs)
main.add_command(alerts)
main.add_command(proxy)
main.add_command(ca)
main.add_command(firewall)
main.add_command(health)

from district.cli import district  # noqa: E402

main.add_command(district)

from gateway.backup_cli import backup, restore  # noqa: E402
from gateway.setup_cli import setup, uninstall, upgrade  # noqa: E402

main.add_command(backup)
main.add_command(restore)
main.add_command(setup)
main.add_command(uninstall)
main.add_command(upgrade)


if __name__ == "__main__":
    main()
