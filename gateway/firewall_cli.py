"""``kalkan firewall``: print, apply or roll back the nftables rules for classroom networks."""

from __future__ import annotations

import click

from gateway.cli import State, pass_state, reports_errors


@click.command("firewall")
@click.option("--apply", "do_apply", is_flag=True,
              help="Load the rules now (atomically), keeping the previous table for --rollback.")
@click.option("--rollback", is_flag=True, help="Put back the table the last --apply replaced.")
@click.option("--network", "networks", multiple=True, metavar="CIDR",
              help="A classroom network besides the policy's rooms (repeat for several).")
@click.option("--interface", default=None, metavar="NAME",
              help="Only traffic that enters on this interface (the classroom side).")
@pass_state
@reports_errors
def firewall(state: State, do_apply: bool, rollback: bool, networks: tuple[str, ...],
             interface: str | None) -> None:
    """Print the nftables rules that send classroom DNS and web traffic through kalkan."""
    from gateway.firewall import (
        STATE_DIR,
        apply_ruleset,
        plan_from,
        render_ruleset,
        rollback_ruleset,
        room_networks,
    )

    config = state.config
    state_dir = config.data_dir / STATE_DIR
    if rollback:
        if do_apply:
            raise click.UsageError("--apply and --rollback exclude each other")
        click.echo(f"kalkan firewall: {rollback_ruleset(state_dir)}")
        return
    plan = plan_from([*room_networks(state.sessions), *networks],
                     config.dns.listen_addresses, config.proxy.transparent_listen_address,
                     interface=interface)
    text = render_ruleset(plan)
    if not do_apply:
        click.echo(text, nl=False)
        return
    saved = apply_ruleset(text, state_dir)
    click.echo(f"kalkan firewall: applied table inet kalkan for "
               f"{', '.join(map(str, plan.networks))}; the previous state is in {saved} "
               f"(`kalkan firewall --rollback` restores it)")
