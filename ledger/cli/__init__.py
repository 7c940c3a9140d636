"""The `ledger` command: the root group in main.py, each command group in commands/.

`main` is the console script. It imports the command line only inside its guard, so Ctrl-C or
SIGTERM at any moment, start-up included, prints one line and exits 130.
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED = 130  # as ledger.cli.errors says; not imported here, so the guard starts first


def main() -> None:  # pragma: no cover - console script entry
    # SIGTERM is an interrupt like Ctrl-C: commands stop the same way and exit 130.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from ledger.cli.main import cli  # lazy: inside the guard, so an interrupt while importing is one line

        cli()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
