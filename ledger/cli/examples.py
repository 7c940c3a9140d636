"""One or two examples at the end of every command's --help, kept here and nowhere else (not in
docstrings) so each shows once and they stay consistent; tests/cli/test_output.py checks every
command has them, once."""

from __future__ import annotations

import click

EXAMPLES: dict[str, list[str]] = {
    "": ["ledger demo", "ledger members add 1234567890 && ledger sync && ledger status"],
    "demo": ["ledger demo", "ledger demo --days 30 --usage-per-day 10"],
    "db": ["ledger db upgrade"],
    "db upgrade": ["LEDGER_DATABASE_URL=postgresql://ledger@db/ledger ledger db upgrade"],
    "db create-reader": ["ledger db create-reader accountant"],
    "members": ["ledger members add 1234567890 --name '팝빌 테스트상사'", "ledger members list"],
    "members add": [
        "ledger members add 1234567890 --name '팝빌 테스트상사'",
        "ledger members add 220-81-12345 --user-id testkorea --threshold 50000",
    ],
    "members import": ["ledger members import members.csv"],
    "members list": ["ledger members list", "ledger members list --json"],
    "members update": [
        "ledger members update 1234567890 --name '팝빌 테스트상사' --threshold 100000",
        "ledger members update 1234567890 --user-id ''   # calls without a UserID again",
    ],
    "members deactivate": ["ledger members deactivate 1234567890"],
    "members reactivate": ["ledger members reactivate 1234567890"],
    "sync": ["ledger sync", "ledger sync --member 1234567890 --kind usage --since 2026-01-01"],
    "status": ["ledger status", "ledger status --json"],
    "payment": ["ledger payment request 1234567890 --amount 110000 ... --dry-run"],
    "payment request": [
        "ledger payment request 1234567890 --amount 110000 --depositor '(주)팝빌' --name 홍길동 "
        "--email pay@example.kr --hp 010-1234-5678 --dry-run",
        "ledger payment request 1234567890 --amount 110000 ... --yes   # from a script",
    ],
    "refund": ["ledger refund request 1234567890 --points 5000 ... --dry-run"],
    "refund request": [
        "ledger refund request 1234567890 --points 5000 --bank 국민 --account 123-456 --holder 홍길동 "
        "--contact 홍길동 --tel 02-000-0000 --reason 해지 --dry-run",
        "ledger refund request 1234567890 --points 5000 ... --yes   # from a script",
    ],
    "track": ["ledger track settle 1234567890 022050917000000001"],
    "pending": ["ledger pending list", "ledger pending poll"],
    "pending list": ["ledger pending list", "ledger pending list --all --json"],
    "pending poll": ["ledger pending poll", "ledger pending poll --json"],
    "balances": ["ledger balances", "ledger balances --json"],
    "alerts": ["ledger alerts list --firing", "ledger alerts mute 1234567890 --for 2d"],
    "alerts list": ["ledger alerts list --firing"],
    "alerts mute": [
        'ledger alerts mute 1234567890 --for 2d -m "deposit promised on Friday"',
        'ledger alerts mute --rule runway --for 12h -m "usage spike during the migration"',
        "ledger alerts mute partner --for 12h",
    ],
    "alerts test": ["LEDGER_ALERT_WEBHOOK_URL=https://hooks.example/x ledger alerts test"],
    "reconcile": ["ledger reconcile", "ledger reconcile --member 1234567890 --month 2026-10"],
    "report": ["ledger report statement --member 1234567890 --month 2026-10"],
    "report statement": [
        "ledger report statement --member 1234567890 --month 2026-10",
        "ledger report statement --member 1234567890 --month 2026-10 --format xlsx --out statement.xlsx",
    ],
    "export": ["ledger export usages --from 2026-10-01 --to 2026-10-31 --out usages.csv"],
    "worker": ["ledger worker --concurrency 4"],
    "beat": ["ledger beat"],
    "popbill": ["ledger popbill balance 1234567890"],
    "popbill balance": ["ledger popbill balance 1234567890"],
    "popbill partner-balance": ["ledger popbill partner-balance 1234567890"],
    "popbill refundable-balance": ["ledger popbill refundable-balance 1234567890"],
    "simulator": ["ledger simulator --port 8765", "POPBILL_API_URL=http://127.0.0.1:8765 ledger sync"],
    "sandbox": ["ledger sandbox up && eval \"$(ledger sandbox env)\"", "ledger sandbox down"],
    "sandbox up": ["ledger sandbox up", "eval \"$(ledger sandbox env)\" && ledger status"],
    "sandbox down": ["ledger sandbox down"],
    "sandbox status": ["ledger sandbox status"],
    "sandbox env": ["eval \"$(ledger sandbox env)\""],
    "db shell": ["ledger db shell", 'ledger db shell -c "SELECT corp_num, name FROM members"'],
    "db url": ["ledger db url", 'psql "$(ledger db url)"'],
    "db prune": ["ledger db prune --dry-run", "LEDGER_RETENTION_RUNS_DAYS=30 ledger db prune"],
    "doctor": ["ledger doctor", 'eval "$(ledger sandbox env)" && ledger doctor'],
    "alerts outbox": ["ledger alerts outbox", "ledger alerts outbox --status failed"],
    "alerts mutes": ["ledger alerts mutes", "ledger alerts mutes --all --json"],
    "alerts unmute": ["ledger alerts unmute 3   # the ID from `ledger alerts mutes`"],
    "alerts relay": ["ledger alerts relay --host 0.0.0.0 --port 9095   # Alertmanager's `ops` receiver"],
    "report month": ["ledger report month --month 2026-11 --format xlsx --out 2026-11.xlsx"],
    "close": ["ledger close --month 2026-11", "ledger close --month 2026-11 --member 1234567890"],
    "reopen": ["ledger reopen --month 2026-11 --reason \"late usage row from Popbill\""],
    "closes": ["ledger closes", "ledger closes --json"],
    "sandbox clock": ["ledger sandbox clock --advance-days 1 && ledger sync"],
    "sandbox serve": ["ledger sandbox up   # runs this in the background"],
    "metrics": ["ledger metrics serve --port 9464"],
    "metrics serve": ["ledger metrics serve --port 9464",
                      "curl -s --compressed http://127.0.0.1:9464/metrics/members | grep ledger_member_balance"],
    "healthcheck": [
        "ledger healthcheck all",
        "python -m ledger.health worker   # docker-compose's healthcheck, lighter",
        "ledger healthcheck || echo unhealthy",
    ],
}


def epilog(lines: list[str], before: str | None = None) -> str:
    text = "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
    return f"{before}\n\n{text}" if before else text


def add_examples(command: click.Command, path: str = "") -> None:
    """Append the examples of `path` (and of its subcommands) to their --help, after anything there."""
    lines = EXAMPLES.get(path)
    if lines and "Examples:" not in (command.epilog or ""):
        command.epilog = epilog(lines, command.epilog)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            add_examples(sub, f"{path} {name}".strip())
