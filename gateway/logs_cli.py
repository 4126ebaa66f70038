"""``kalkan logs``: the access log on the command line (tail, search, summary, export, purge)."""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click

from gateway.cli import State, pass_state, reports_errors
from policies.errors import KalkanError


def _time(text: str | None, zone: dt.tzinfo) -> dt.datetime | None:
    """``--since``/``--until``: ISO date or date-time in school time, or ``2h``/``3d`` ago."""
    if text is None:
        return None
    text = text.strip()
    try:
        if text[-1:] in "mhd" and text[:-1].isdigit():
            unit = {"m": "minutes", "h": "hours", "d": "days"}[text[-1]]
            return (dt.datetime.now(dt.UTC) - dt.timedelta(**{unit: int(text[:-1])})).replace(
                tzinfo=None)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise KalkanError(f"{text!r} is not a time",
                          hint="write 2026-11-25, 2026-11-25T10:30 (school time), or 2h, 3d "
                               "(that long ago)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def filter_options(func: Callable[..., object]) -> Callable[..., object]:
    for name, help_text in reversed([
            ("--client", "Only this client address."), ("--room", "Only this room."),
            ("--class", "Only this class, e.g. 7B."), ("--category", "Only this category."),
            ("--host", "Only this exact host name."),
            ("--since", "From: 2026-11-25, 2026-11-25T10:30 (school time), or 2h, 3d ago."),
            ("--until", "Up to (not including) this time.")]):
        dest = "class_id" if name == "--class" else name[2:]
        func = click.option(name, dest, default=None, help=help_text)(func)
    return click.option("--action", type=click.Choice(["allow", "block"]), default=None,
                        help="Only allowed or only blocked requests.")(func)


def _filter(db, client, room, class_id, category, host, since, until, action):  # type: ignore[no-untyped-def]
    from gateway.events.reports import SearchFilter, school_zone

    zone = school_zone(db)
    return SearchFilter(client=client, room=room, class_id=class_id, category=category,
                        action=action, host=host, since=_time(since, zone),
                        until=_time(until, zone)), zone


@click.group()
def logs() -> None:
    """The access log: what was asked for, and what kalkan did."""


@logs.command("search")
@filter_options
@click.option("-n", "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@pass_state
@reports_errors
def logs_search(state: State, limit: int, **filters: str | None) -> None:
    """The newest matching records, newest first."""
    from gateway.events.reports import format_event, search

    with state.sessions() as db:
        where, zone = _filter(db, **filters)
        rows = search(db, where, limit)
        for row in rows:
            click.echo(format_event(row, zone))
    if not rows:
        click.echo("no matching records", err=True)


@logs.command("tail")
@filter_options
@click.option("-n", "--lines", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="How many earlier records to show first.")
@click.option("--interval", type=float, default=0.5, hidden=True)
@click.option("--for", "duration", type=float, default=None, hidden=True,
              help="Stop after this many seconds (for tests).")
@pass_state
@reports_errors
def logs_tail(state: State, lines: int, interval: float, duration: float | None,
              **filters: str | None) -> None:
    """Show records as they are written, until Ctrl-C."""
    from gateway.events.reports import format_event, last_id, search, tail

    deadline = None if duration is None else time.monotonic() + duration
    with state.sessions() as db:
        where, zone = _filter(db, **filters)
        after = last_id(db)
        for row in reversed(search(db, where, lines) if lines else []):
            click.echo(format_event(row, zone))
    try:
        while deadline is None or time.monotonic() < deadline:
            with state.sessions() as db:
                newest = last_id(db)  # rows the filter skips are not read again
                for row in tail(db, after, where, upto=newest):
                    click.echo(format_event(row, zone))
                after = max(after, newest)
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


@logs.command("summary")
@click.option("--date", "day", default=None, metavar="YYYY-MM-DD",
              help="The school day (default: today).")
@pass_state
@reports_errors
def logs_summary(state: State, day: str | None) -> None:
    """A day per room and category: top blocked sites and categories, attempts per class."""
    from gateway.events.reports import daily_summary, school_zone

    with state.sessions() as db:
        zone = school_zone(db)
        try:
            date = dt.date.fromisoformat(day) if day else dt.datetime.now(zone).date()
        except ValueError:
            raise KalkanError(f"--date {day!r} is not a date", hint="write 2026-11-25") from None
        click.echo(daily_summary(db, date).render())


@logs.command("export")
@click.option("--student", required=True, help="The student's number or recorded name.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the CSV here instead of standard output.")
@pass_state
@reports_errors
def logs_export(state: State, student: str, output: Path | None) -> None:
    """Every record that names one student, as CSV (a request under rules 2.14–2.17)."""
    from gateway.events.privacy import export_student, find_student

    with state.sessions() as db:
        found = find_student(db, student)
        if output is None:
            n = export_student(db, found.id, sys.stdout)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                n = export_student(db, found.id, out)
    click.echo(f"{n} records of student #{found.id}", err=True)


@logs.command("erase")
@click.option("--student", required=True, help="The student's number or recorded name.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
@reports_errors
def logs_erase(state: State, student: str, yes: bool) -> None:
    """Delete every record that names one student (events, counts, alerts)."""
    from gateway.events.privacy import erase_student, find_student

    with state.sessions() as db:
        found = find_student(db, student)
        if not yes:
            click.confirm(f"Delete every record that names student #{found.id}?", abort=True)
        result = erase_student(db, found.id)
    click.echo(f"erased {result.events} events, {result.counts} allowed counts and "
               f"{result.alerts} alerts of student #{found.id}")


@logs.command("purge")
@pass_state
@reports_errors
def logs_purge(state: State) -> None:
    """Delete now what the retention settings say is too old (also runs by itself)."""
    from gateway.events.retention import purge

    result = purge(state.sessions, state.config.retention)
    size = f"; the access log takes {result.store_bytes >> 20} MB" \
        if result.store_bytes is not None else ""
    click.echo(f"{result}{size}")


@logs.command("replay")
@pass_state
@reports_errors
def logs_replay(state: State) -> None:
    """Put events from the journal (kept while the database was away) into the database."""
    from gateway.events.queue import EventQueue
    from gateway.events.writer import EventWriter, WriterConfig

    config = state.config
    writer = EventWriter(EventQueue(), config.database_url,
                         WriterConfig.from_config(config, "cli"), sessions=state.sessions)
    writer.replay_now()
    left = len(writer.journal.segments())
    click.echo(f"replayed {writer.stats.replayed} events; {left} journal segment(s) left "
               f"(still being written by a running process, or the database is away)")
