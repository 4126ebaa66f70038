"""``kalkan proxy``: the transparent and explicit proxy alone, in the foreground."""

from __future__ import annotations

import click

from gateway.cli import State, pass_state, reports_errors


def _address(text: str | None, option: str) -> tuple[str, int] | None:
    from gateway.config import parse_listen

    if text is None:
        return None
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.command("proxy")
@click.option("--listen", default=None, metavar="ADDR:PORT",
              help="Explicit-proxy address instead of proxy.listen.")
@click.option("--transparent-listen", "transparent", default=None, metavar="ADDR:PORT",
              help="Transparent-mode address instead of proxy.transparent_listen.")
@click.option("--no-explicit", is_flag=True, help="Run the transparent mode only.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes sharing the ports (default: proxy.workers).")
@pass_state
@reports_errors
def proxy(state: State, listen: str | None, transparent: str | None, no_explicit: bool,
          workers: int | None) -> None:
    """Run the proxy alone, in the foreground, until Ctrl-C."""
    from gateway.bootstrap import ensure_policy
    from gateway.log_format import configure_logging
    from gateway.proxy.master import serve_proxy

    config = state.config
    configure_logging(config.logging.level, config.logging.format)
    with state.sessions() as db:
        ensure_policy(db, config)  # also migrates: the workers open the database as it is
    regular = None if no_explicit else (_address(listen, "--listen") or True)
    where = _address(transparent, "--transparent-listen") or True
    modes = []
    if regular:
        modes.append(f"explicit on {listen or config.proxy.listen}")
    if transparent or config.proxy.transparent_listen:
        modes.append(f"transparent on {transparent or config.proxy.transparent_listen}")
    click.echo(f"kalkan: proxy {', '.join(modes) or '(nowhere)'} (Ctrl-C to stop)")
    serve_proxy(config, regular=regular, transparent=where, workers=workers)
