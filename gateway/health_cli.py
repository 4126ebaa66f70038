"""``kalkan health``: one line per service and an exit code, for systemd and monitoring."""

from __future__ import annotations

import json

import click

from gateway.cli import State, pass_state, reports_errors
from gateway.health.services import SERVICES, service_health


@click.command()
@click.argument("services", nargs=-1, type=click.Choice(SERVICES))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_state
@reports_errors
def health(state: State, services: tuple[str, ...], as_json: bool) -> None:
    """Exit 0 if each service (default: dns and proxy) wrote its status in the last 30 s,
    1 if one did not. The monitor is the uplink sampler of `kalkan run`."""
    results = [service_health(state.config, name) for name in services or ("dns", "proxy")]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results]))
    else:
        for r in results:
            click.echo(f"{r.name}: {'ok' if r.up else 'DOWN'} ({r.detail})")
    if not all(r.up for r in results):
        raise SystemExit(1)
