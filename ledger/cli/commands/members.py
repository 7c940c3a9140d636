"""`ledger members ...`."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy.orm import Session

from ledger.cli.errors import friendly_errors
from ledger.cli.options import wide_option
from ledger.cli.output import echo_json, print_table
from ledger.cli.runtime import open_engine
from ledger.members import service


@click.group()
def members() -> None:
    """Add, import, update, list, deactivate and reactivate linked members."""


@members.command()
@click.argument("corp_num")
@click.option("--name", help="Business name, for reports.")
@click.option("--user-id", help="Popbill UserID to call with (x-pb-userid).")
@click.option("--threshold", help="Low-balance alert threshold in points.")
@friendly_errors
def add(corp_num: str, name: str | None, user_id: str | None, threshold: str | None) -> None:
    """Add one member by its 10-digit CORP_NUM."""
    item = service.parse_member(corp_num, name, user_id, threshold)
    with Session(open_engine(), expire_on_commit=False) as session, session.begin():
        service.add_member(session, item)
    click.echo(f"added {item.corp_num}")


@members.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--encoding", help="The file's encoding [default: detected; UTF-8 with or without BOM, or CP949].")
@click.option(
    "--update", "existing", flag_value="update", help="Update members already known (name, user id, threshold)."
)
@click.option("--skip-existing", "existing", flag_value="skip", help="Leave members already known as they are.")
@friendly_errors
def import_(file: Path, encoding: str | None, existing: str | None) -> None:
    """Add every member of a CSV file; all or nothing. Columns corp_num[,name,user_id,threshold]
    or Korean Excel's 사업자번호[,상호,아이디,임계값]. Members already known are refused unless
    --update or --skip-existing."""
    with Session(open_engine(), expire_on_commit=False) as session, session.begin():
        result = service.import_members(session, file, encoding=encoding, existing=existing or "refuse")
    click.echo(f"imported {len(result.added)} new member(s), updated {len(result.updated)}, "
               f"skipped {len(result.skipped)} (read as {result.encoding})")  # fmt: skip


@members.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@wide_option
@friendly_errors
def list_(as_json: bool, wide: bool) -> None:
    """List members."""
    with Session(open_engine(), expire_on_commit=False) as session:
        rows = [
            {"corp_num": m.corp_num, "name": m.name, "user_id": m.user_id, "active": m.active,
             "threshold": m.low_balance_threshold}
            for m in service.list_members(session)
        ]  # fmt: skip
    if as_json:
        echo_json(rows)
    else:
        print_table("members", rows, ["corp_num", "name", "user_id", "active", "threshold"], wide=wide)


def _set_active(corp_num: str, active: bool) -> None:
    with Session(open_engine(), expire_on_commit=False) as session, session.begin():
        member = service.set_active(session, corp_num, active)
    click.echo(f"{'reactivated' if active else 'deactivated'} {member.corp_num}")


@members.command()
@click.argument("corp_num")
@friendly_errors
def deactivate(corp_num: str) -> None:
    """Stop syncing a member (its ledger stays)."""
    _set_active(corp_num, False)


@members.command()
@click.argument("corp_num")
@friendly_errors
def reactivate(corp_num: str) -> None:
    """Sync a deactivated member again (from where its ledger stands)."""
    _set_active(corp_num, True)


@members.command()
@click.argument("corp_num")
@click.option("--name", help="Business name, for reports ('' clears it).")
@click.option("--user-id", help="Popbill UserID to call with ('' clears it).")
@click.option("--threshold", help="Low-balance alert threshold in points ('' uses the default).")
@friendly_errors
def update(corp_num: str, name: str | None, user_id: str | None, threshold: str | None) -> None:
    """Change a member's name, UserID or alert threshold; the options not given stay."""
    given = {k: v for k, v in {"name": name, "user_id": user_id, "threshold": threshold}.items() if v is not None}
    with Session(open_engine(), expire_on_commit=False) as session, session.begin():
        member = service.update_member(session, corp_num, **given)
    click.echo(f"updated {member.corp_num}: {', '.join(f'{k} {v!r}' for k, v in given.items())}")
