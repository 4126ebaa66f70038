"""``kalkan district``: the district's schools and its baseline, on the district database."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import Engine, select

from gateway.cli import State, _author, _read, decision_options, pass_state, reports_errors
from policies.errors import KalkanError
from policies.models import Role


@click.group()
@click.option("--url", default=None, metavar="URL",
              help="The district PostgreSQL (default: district.url in kalkan.yaml).")
@click.pass_context
def district(ctx: click.Context, url: str | None) -> None:
    """Many schools in one PostgreSQL: schools and the district baseline policy."""
    ctx.meta["district_url"] = url


def _district(state: State) -> Engine:
    from district.schools import open_district

    url = click.get_current_context().meta.get("district_url") or state.config.district.url
    if not url:
        raise KalkanError("no district database given",
                          hint="set district.url in kalkan.yaml or pass --url")
    return open_district(url)


@district.command("add-school")
@click.argument("school_id")
@click.option("--name", required=True, help="The school's name, as people know it.")
@click.option("--adopt", is_flag=True,
              help="This database held one school (in PostgreSQL's public schema): move its "
                   "tables into SCHOOL_ID's schema, keeping everything.")
@pass_state
@reports_errors
def add_school(state: State, school_id: str, name: str, adopt: bool) -> None:
    """Create SCHOOL_ID's schema with the default policy (its gateway's school_id)."""
    from district.schools import add_school as add
    from district.schools import adopt_single_school

    engine = _district(state)
    school = adopt_single_school(engine, school_id, name) if adopt else add(engine, school_id,
                                                                             name)
    click.echo(f"school {school.id} ({school.name}) in schema {school.schema_name}; its "
               f"gateway's kalkan.yaml: school_id: {school.id} and district.url")


@district.command("schools")
@pass_state
@reports_errors
def schools(state: State) -> None:
    """List the district's schools."""
    from district.schools import list_schools
    from policies.database import session_factory

    with session_factory(_district(state))() as db:
        for s in list_schools(db):
            click.echo(f"{s.id:24} {s.schema_name:28} {s.name}")


@district.group("baseline")
def baseline() -> None:
    """The district baseline: what every school must block for students."""


@baseline.command("publish")
@click.argument("file")
@decision_options
@pass_state
@reports_errors
def baseline_publish(state: State, file: str, protocol: str, decision_date: str,
                     author: str | None, comment: str) -> None:
    """Check FILE and publish it as the new baseline; every gateway follows within seconds."""
    from district.baseline import publish_baseline
    from policies.database import session_factory
    from policies.decision import CouncilDecision

    with session_factory(_district(state))() as db:
        rev = publish_baseline(db, _read(file), file=file,
                               decision=CouncilDecision(protocol, decision_date),
                               author=author or _author(), comment=comment)
    click.echo(f"baseline revision {rev.id} published: decision No {rev.protocol} of "
               f"{rev.decision_date}")


@baseline.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@reports_errors
def baseline_validate(file: Path) -> None:
    """Check FILE without publishing it."""
    from district.baseline import parse_baseline

    doc = parse_baseline(file.read_text(encoding="utf-8"), str(file))
    click.echo(f"{file}: a valid baseline ({len(doc.mandatory)} mandatory categories, "
               f"{sum(map(len, doc.sites.values()))} sites)")


@baseline.command("show")
@pass_state
@reports_errors
def baseline_show(state: State) -> None:
    """Print the baseline in force."""
    from district.models import BaselineRevision
    from policies.database import session_factory

    with session_factory(_district(state))() as db:
        row = db.scalar(select(BaselineRevision).order_by(BaselineRevision.id.desc()).limit(1))
    if row is None:
        click.echo("no baseline published yet")
        return
    click.echo(f"# baseline revision {row.id}: decision No {row.protocol} of "
               f"{row.decision_date}, by {row.author}")
    click.echo(row.document, nl=False)


@baseline.command("history")
@pass_state
@reports_errors
def baseline_history(state: State) -> None:
    """List the baseline revisions, newest last."""
    from district.models import BaselineRevision
    from policies.database import session_factory

    with session_factory(_district(state))() as db:
        for r in db.scalars(select(BaselineRevision).order_by(BaselineRevision.id)):
            click.echo(f"{r.id:4}  {r.created_at:%Y-%m-%d %H:%M}  No {r.protocol} of "
                       f"{r.decision_date}  {r.author}  {r.comment}")


@district.command("add-staff")
@click.argument("username")
@click.option("--full-name", required=True, help="The person's name.")
@click.option("--school", "school_id", default=None,
              help="A school's account (e.g. its responsible person); default: district staff.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=None,
              help="For a school's account (default responsible); district staff are 'district'.")
@click.password_option(help="The password (asked for when not given).")
@pass_state
@reports_errors
def add_staff(state: State, username: str, full_name: str, school_id: str | None,
              role: str | None, password: str) -> None:
    """Create an admin account: district staff (see every school), or a school's first one."""
    from admin_ui.staff import create_account
    from district.schools import school_database_url
    from policies.database import open_engine, session_factory

    engine = _district(state)
    if school_id is None:
        if role not in (None, Role.DISTRICT.value):
            raise KalkanError("district staff have the role 'district'",
                              hint="give --school for an account of one school")
        chosen = Role.DISTRICT
    else:
        if role == Role.DISTRICT.value:
            raise KalkanError("the district role belongs to the district's own accounts",
                              hint="leave out --school for district staff")
        chosen = Role(role or Role.RESPONSIBLE.value)
        from district.models import DistrictSchool

        with session_factory(engine)() as db:
            if db.get(DistrictSchool, school_id) is None:
                raise KalkanError(f"the district has no school {school_id!r}",
                                  hint="`kalkan district schools` lists them; "
                                       "`kalkan district add-school` adds one")
        engine = open_engine(school_database_url(engine.url.render_as_string(False), school_id))
    with session_factory(engine)() as db:
        user = create_account(db, username=username, full_name=full_name, role=chosen,
                              password=password)
        db.commit()
    click.echo(f"account {user.username} ({user.role}) for "
               f"{'the district' if school_id is None else 'school ' + school_id}")
