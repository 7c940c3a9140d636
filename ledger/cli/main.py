"""The `ledger` root group: every command is imported only when it runs or shows its own help.

`ledger --help` reads the table below and imports no command, no database and no HTTP code, so
it answers at once even on a loaded machine. Each command module lives in ledger/cli/commands/
and imports downward only (ledger.cli.errors, .runtime, .options, .output, the domain packages).
"""

from __future__ import annotations

import importlib

import click

from ledger import __version__
from ledger.cli.errors import EXIT_CODES_HELP, EXIT_INTERRUPTED
from ledger.cli.examples import EXAMPLES, add_examples, epilog

# name: (module under ledger.cli.commands, attribute, the line `ledger --help` shows: the
# command's own short help at 70 characters).
# tests/cli/test_lazy_root.py checks each line against the command's own help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "db": ("db", "db", 'Manage the ledger database.'),
    "members": ("members", "members", 'Add, import, update, list, deactivate and reactivate linked members.'),
    "sync": ("sync", "sync", "Page the members' histories from Popbill into the ledger."),
    "status": ("sync", "status", 'Last sync per member and kind, rows held, recent failures.'),
    "payment": ("pending", "payment", 'Deposit (무통장입금) requests.'),
    "refund": ("pending", "refund", 'Point refund (환불) requests.'),
    "track": ("pending", "track", 'Follow a settle or refund CODE issued elsewhere (say, by your own...'),
    "pending": ("pending", "pending", 'Tracked deposits and refunds.'),
    "balances": ("alerts", "balances", 'Check every balance now (GetBalance, GetPartnerBalance), alert, and...'),
    "alerts": ("alerts", "alerts", 'Low-balance, runway and stuck-item alerts.'),
    "reconcile": ("reconcile", "reconcile", 'Check that the ledger adds up to what Popbill reports; keep and...'),
    "report": ("reports", "report", 'Reports for accountants.'),
    "export": ("reports", "export", 'Export a ledger table or view (see docs/accountants.md for the list).'),
    "close": ("closing", "close", 'Close (마감) a month: freeze its statements; later changes become...'),
    "reopen": ("closing", "reopen", 'Reopen a closed month, with an audit record; close it again when it...'),
    "closes": ("closing", "closes", 'List month closes and reopens (the audit trail).'),
    "worker": ("worker", "worker", 'Run a Celery worker (threads: the engine and the Popbill client are...'),
    "beat": ("worker", "beat", 'Run Celery beat, the scheduler.'),
    "demo": ("demo", "demo", 'Start a simulated Popbill and a database, add five members, sync...'),
    "popbill": ("popbill", "popbill", 'Call Popbill directly with the configured credentials.'),
    "simulator": ("simulator", "simulator", 'Run a local Popbill (auth and point API on one port) until Ctrl-C.'),
    "sandbox": ("sandbox", "sandbox", 'A simulated Popbill and a PostgreSQL of their own that stay up in...'),
    "doctor": ("doctor", "doctor", 'Check the configuration, Popbill, the clock, the database, the...'),
    "metrics": ("metrics", "metrics", 'Prometheus metrics.'),
    "healthcheck": ("health", "healthcheck", "Check this host's worker node (it answers, and reaches the..."),
}

# Commands that report on a bad configuration themselves instead of refusing to start.
_SETTINGS_CHECKED_BY_COMMAND = {"doctor"}


def load_command(name: str) -> click.Command:
    module, attribute, _ = COMMANDS[name]
    command = getattr(importlib.import_module(f"ledger.cli.commands.{module}"), attribute)
    add_examples(command, name)
    return command


class LazyRoot(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_command(name) if name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_line) for name, (_, _, help_line) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # click would print a blank line and "Aborted!", and exit 1
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # Kept so the root can tell `ledger members list --help` (always answered) from a run.
        ctx.meta["ledger.argv"] = list(args)
        return super().parse_args(ctx, args)


@click.group(
    cls=LazyRoot, context_settings={"help_option_names": ["-h", "--help"]},
    epilog=epilog(EXAMPLES[""], EXIT_CODES_HELP),
)  # fmt: skip
@click.version_option(__version__, prog_name="ledger")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """ledger: your Popbill members' point ledger, in your own PostgreSQL."""
    if {"--help", "-h"} & set(ctx.meta.get("ledger.argv", ())):
        return  # help is answered before any setting is read or any log configured
    # lazy: structlog and the settings are not needed to show help
    from ledger import logs
    from ledger.cli.runtime import load_settings
    from ledger.settings import Settings, SettingsError

    if ctx.invoked_subcommand not in _SETTINGS_CHECKED_BY_COMMAND:
        logs.configure(load_settings())  # a bad variable stops every command here, with one line naming it
        return
    try:
        logs.configure(Settings.from_env())
    except SettingsError:
        logs.configure(Settings())  # the command itself reports the bad variable
