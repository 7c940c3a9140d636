"""The health check as a command line: exit 0 (`ok: <target>`) or 1 with one line saying what
is wrong. `ledger healthcheck` and `python -m ledger.health` both end here."""

from __future__ import annotations

import argparse
import sys

from ledger.health import checks
from ledger.settings import Settings, SettingsError


def check(target: str, node: str | None = None) -> tuple[int, str]:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return 2, str(exc)
    problems = checks.run(target, settings, node=node)
    if problems:
        return 1, "; ".join(problems)
    return 0, f"ok: {target}"


def main(argv: list[str] | None = None) -> None:

    parser = argparse.ArgumentParser(prog="python -m ledger.health", description=__doc__)
    parser.add_argument("target", nargs="?", default="all", choices=checks.TARGETS)
    parser.add_argument("--node", help="the worker node to ask (default: LEDGER_WORKER_NAME, or ledger@<this host>)")
    args = parser.parse_args(argv)
    code, line = check(args.target, args.node)
    print(line, file=sys.stdout if code == 0 else sys.stderr)
    sys.exit(code)
