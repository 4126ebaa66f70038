"""``kalkan alerts``: deliberate-violation alerts on the command line."""

from __future__ import annotations

import datetime as dt

import click

from gateway.cli import State, pass_state, reports_errors


@click.group()
def alerts() -> None:
    """Alerts about students' deliberate attempts to reach forbidden sites."""


@alerts.command("list")
@click.option("--days", type=click.IntRange(1, 3650), default=7, show_default=True,
              help="Alerts seen in this many last days.")
@click.option("--class", "class_id", default=None, help="Only this class.")
@pass_state
@reports_errors
def alerts_list(state: State, days: int, class_id: str | None) -> None:
    """List alerts, newest first, with who was told and how."""
    from sqlalchemy import select

    from gateway.alerts.models import Alert
    from gateway.events.reports import school_zone
    from gateway.notify.models import Notification
    from policies.database import utcnow

    with state.sessions() as db:
        zone = school_zone(db)
        query = select(Alert).where(Alert.last_seen >= utcnow() - dt.timedelta(days=days))
        if class_id:
            query = query.where(Alert.class_id == class_id)
        rows = list(db.scalars(query.order_by(Alert.last_seen.desc())))
        for a in rows:
            seen = a.last_seen.replace(tzinfo=dt.UTC).astimezone(zone)
            told = db.execute(select(Notification.channel, Notification.status).where(
                Notification.alert_id == a.id)).all()
            sent = sum(1 for _, status in told if status == "sent")
            who = f"student #{a.student_id}" if a.student_id else (a.device_id or a.client)
            click.echo(f"#{a.id:<5} {seen:%Y-%m-%d %H:%M}  {a.severity:<6} {a.rule:<17} "
                       f"{a.category:<12} {a.class_id or '-':<4} {a.room_id or '-':<10} "
                       f"{who:<14} {a.attempts:>3} attempts  session "
                       f"{a.session_id or '-'}  messages sent {sent}/{len(told)}")
            if a.sites:
                click.echo(f"        sites: {', '.join(a.sites[:8])}")
    if not rows:
        click.echo(f"no alerts in the last {days} days")
