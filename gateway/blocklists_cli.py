"""``kalkan blocklists …``: the category lists the gateway filters with."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from gateway.cli import State, pass_state, reports_errors


@click.group()
def blocklists() -> None:
    """Category lists: add sources, update the index, look a host up."""


@blocklists.command("add")
@click.argument("name")
@click.argument("location")
@click.option("--format", "fmt", required=True,
              type=click.Choice(["ut1", "hosts", "adblock", "plain", "csv"]),
              help="How the list is written.")
@click.option("--category", default=None,
              help="The kalkan category of every entry (hosts, adblock and plain lists).")
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML mapping of the list's categories to kalkan's (ut1, csv).")
@pass_state
@reports_errors
def add(state: State, name: str, location: str, fmt: str, category: str | None,
        mapping: str | None) -> None:
    """Add a list from a URL or a path; `kalkan blocklists update` reads it."""
    from blocklists.sources import add_source

    with state.sessions() as db:
        add_source(db, name, location, fmt, category=category, mapping=mapping)
    click.echo(f"added {name}; run `kalkan blocklists update` to use it")


@blocklists.command("remove")
@click.argument("name")
@pass_state
@reports_errors
def remove(state: State, name: str) -> None:
    """Stop using a list (the index keeps it until the next update)."""
    from blocklists.sources import remove_source

    with state.sessions() as db:
        remove_source(db, name)
    click.echo(f"removed {name}; run `kalkan blocklists update` to rebuild the index")


@blocklists.command("enable")
@click.argument("name")
@pass_state
@reports_errors
def enable(state: State, name: str) -> None:
    """Use a list again."""
    from blocklists.sources import set_enabled

    with state.sessions() as db:
        set_enabled(db, name, True)
    click.echo(f"{name} enabled")


@blocklists.command("disable")
@click.argument("name")
@pass_state
@reports_errors
def disable(state: State, name: str) -> None:
    """Keep a list registered but leave it out of the index."""
    from blocklists.sources import set_enabled

    with state.sessions() as db:
        set_enabled(db, name, False)
    click.echo(f"{name} disabled")


@blocklists.command("update")
@click.argument("names", nargs=-1)
@click.option("--force", is_flag=True, help="Accept a list that shrank by more than half.")
@pass_state
@reports_errors
def update(state: State, names: tuple[str, ...], force: bool) -> None:
    """Fetch the lists, check them and swap in a new index; failures keep the old one."""
    from blocklists.progress import Progress
    from blocklists.sources import ensure_bundled_sources
    from blocklists.update import update as run_update

    config = state.config
    with state.sessions() as db:
        ensure_bundled_sources(db)
        result = run_update(db, config.data_dir, only=list(names) or None, force=force,
                            progress=Progress(), timeout=config.blocklists.download_timeout,
                            max_bytes=config.blocklists.max_download_mb << 20)
    for o in result.outcomes:
        if o.ok:
            click.echo(f"  {o.name}: {o.entries:,} entries")
        else:
            kept = " (its last good copy is used)" if o.used_previous else ""
            click.secho(f"  {o.name}: FAILED{kept}\n    {o.error}", fg="red", err=True)
    stats = result.stats
    if stats:
        click.echo(f"index {result.index_path}: {stats.domains:,} names, "
                   f"{stats.file_size / 1e6:.1f} MB, built in {stats.build_seconds:.1f} s")
    if result.failed:
        raise SystemExit(1)


@blocklists.command("list")
@pass_state
@reports_errors
def list_(state: State) -> None:
    """The sources, their state and their last update."""
    from blocklists.sources import list_sources

    with state.sessions() as db:
        for s in list_sources(db):
            state_text = "enabled" if s.enabled else "disabled"
            last = f"{s.last_success_at:%Y-%m-%d %H:%M} UTC" if s.last_success_at else "never"
            what = s.category or ("mapped" if s.format in ("ut1", "csv") else "")
            click.echo(f"{s.name:<22} {s.format:<8} {what:<11} {state_text:<9} "
                       f"{s.entries:>9,} entries  updated {last}  {s.location}")
            if s.last_error:
                click.secho(f"    last error: {s.last_error}", fg="red")


@blocklists.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
@reports_errors
def stats(state: State, as_json: bool) -> None:
    """Names per category and per source, index size, last update, errors."""
    from blocklists.index import open_index
    from blocklists.sources import list_sources
    from blocklists.update import index_path

    path = index_path(state.config.data_dir)
    if not path.exists():
        click.echo("no index yet: run `kalkan blocklists update`")
        raise SystemExit(1)
    with open_index(path) as index:
        st = index.stats
    with state.sessions() as db:
        sources = list_sources(db)
        errors = {s.name: s.last_error for s in sources if s.last_error}
        reports = {s.name: s.report for s in sources}
    if as_json:
        click.echo(json.dumps({"index": str(path), **st.as_dict(), "errors": errors,
                               "reports": reports}, indent=2, default=str))
        return
    built = dt.datetime.fromisoformat(st.built_at)
    click.echo(f"index {path}: {st.domains:,} names, {st.entries:,} entries, "
               f"{Path(path).stat().st_size / 1e6:.1f} MB, built {built:%Y-%m-%d %H:%M} UTC "
               f"in {st.build_seconds:.1f} s")
    click.echo("per category:")
    for cat, n in sorted(st.per_category.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {cat:<16} {n:>10,}")
    click.echo("per source:")
    for src, n in sorted(st.per_source.items(), key=lambda kv: -kv[1]):
        report = reports.get(src) or {}
        invalid = report.get("invalid", 0)
        click.echo(f"  {src:<22} {n:>10,}  ({invalid:,} invalid lines at last update)")
    for name, error in errors.items():
        click.secho(f"error in {name}: {error}", fg="red")


@blocklists.command("lookup")
@click.argument("host")
@click.option("--url", default=None, help="A full URL, to match URL entries too.")
@pass_state
@reports_errors
def lookup(state: State, host: str, url: str | None) -> None:
    """Which categories HOST has, from which list, and which entry matched."""
    from blocklists.index import open_index
    from blocklists.update import index_path
    from policies.validation import check_host

    domain = check_host(host)
    path = index_path(state.config.data_dir)
    if not path.exists():
        click.echo("no index yet: run `kalkan blocklists update`")
        raise SystemExit(1)
    url_path = None
    if url:
        rest = url.split("://", 1)[-1]
        url_path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
    with open_index(path) as index:
        matches = index.lookup(domain, url_path)
    if not matches:
        click.echo(f"{domain}: in no list")
        raise SystemExit(1)
    for m in matches:
        click.echo(f"{domain}: {m.category:<14} list {m.source:<22} entry {m.entry}")
