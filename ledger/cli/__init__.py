"""The `ledger` command: the root group in main.py, each command group in commands/.

`main` is the console script. It imports the command line only inside its guard, and runs it
outside click's own interrupt handling (which would print "Aborted!" and exit 1), so Ctrl-C or
SIGTERM at any moment, start-up included, prints one line and exits 130.
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_INTERRUPTED = 130  # as ledger.cli.errors says; not imported here, so the guard starts first


def _interrupted() -> None:
    print("interrupted", file=sys.stderr)
    sys.exit(EXIT_INTERRUPTED)


def main() -> None:  # pragma: no cover - console script entry
    # SIGTERM is an interrupt like Ctrl-C: commands stop the same way and exit 130.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        # lazy: inside the guard, so an interrupt while importing is one line too
        import click

        from ledger.cli.main import cli

        try:
            code = cli.main(standalone_mode=False)
        except click.exceptions.Abort:  # click's word for an interrupt (or Ctrl-C at a prompt)
            _interrupted()
        except click.exceptions.Exit as done:
            code = done.exit_code
        except click.ClickException as error:
            error.show()
            code = error.exit_code
        sys.stdout.flush()
    except KeyboardInterrupt:
        _interrupted()
    except BrokenPipeError:  # `ledger ... | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
