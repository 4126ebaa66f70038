"""``kalkan ca create|export``: the school CA for inspected groups."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.cli import State, pass_state, reports_errors


@click.group("ca")
def ca() -> None:
    """The school's certificate authority (only for groups in proxy.inspect_groups)."""


@ca.command("create")
@click.option("--force", is_flag=True, help="Replace an existing CA (computers must reinstall).")
@pass_state
@reports_errors
def ca_create(state: State, force: bool) -> None:
    """Create the school CA under data_dir/ca (the key stays there, mode 0600)."""
    from gateway.proxy.ca import ca_dir, create_ca, fingerprint

    directory = ca_dir(state.config.data_dir)
    path = create_ca(directory, state.config.school_id, force=force)
    click.echo(f"wrote {path} (key in {directory}, readable by its owner only)")
    click.echo(f"SHA-256 fingerprint: {fingerprint(directory)}")
    click.echo("next: `kalkan ca export` and install the certificate on the computers")


@ca.command("export")
@click.option("--format", "fmt", type=click.Choice(["pem", "der"]), default="pem",
              show_default=True, help="PEM for Windows and Linux, DER for Android.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the certificate here (default: standard output).")
@pass_state
@reports_errors
def ca_export(state: State, fmt: str, output: Path | None) -> None:
    """Print the CA certificate and how to install it on Windows, Linux and Android."""
    from gateway.proxy.ca import INSTALL_INSTRUCTIONS, ca_dir, export_ca, fingerprint

    directory = ca_dir(state.config.data_dir)
    data = export_ca(directory, fmt)
    if output is not None:
        output.write_bytes(data)
        shown = str(output)
    elif fmt == "der" and sys.stdout.isatty():
        raise click.UsageError("DER is binary: give -o FILE")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        shown = "the certificate above"
    click.echo(INSTALL_INSTRUCTIONS.format(file=shown, fingerprint=fingerprint(directory)),
               err=output is None)
