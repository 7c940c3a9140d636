"""README's "First hour", run as printed, in the README's order: the set-up commands at its top
first (their `ledger` part: `ledger demo`), then every `$ command` in the console blocks, in
one fresh HOME (no LEDGER_HOME, no LEDGER_DATABASE_URL), each command's output compared with
what the README shows; then the demo's closing suggestions pasted, and the accountants' ten
queries through `ledger db shell` against the sandbox. Every demo must reconcile whole: a demo
after another one (other options, another day) shows a world of its own, never a mix.

Outputs are compared after normalising what must differ between runs: numbers (dates, ports,
counts, amounts) become '#', table borders and runs of spaces go. A line '…' in the README
stands for any number of lines. `python -m tests.test_first_hour` prints a fresh run's
outputs, to update the README after a deliberate change of output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ACCOUNTANTS = ROOT / "docs" / "accountants.md"
ELLIPSIS = "…"
BORDERS = re.compile(r"[\u2500-\u257f]")
NUMBER = re.compile(r"\d+(?:[.,:\-]\d+)*")


# -- the README ------------------------------------------------------------------------------


def setup_commands(text: str) -> list[str]:
    """The `ledger` commands of the set-up block at the README's top (after `pip install ... &&`)."""
    block = re.search(r"```sh\n(.*?)```", text[: text.index("\n## ")], flags=re.S).group(1)
    parts = [part.strip() for line in block.splitlines() for part in line.split("&&")]
    return [part for part in parts if part.startswith("ledger ")]


def first_hour_section(text: str) -> str:
    start = text.index("\n## First hour")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def console_steps(section: str) -> list[tuple[str, list[str]]]:
    """[(command, expected output lines)] from the ```console blocks, in order."""
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


def normalise(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if line.strip() == ELLIPSIS:
            out.append(ELLIPSIS)
            continue
        flat = " ".join(NUMBER.sub("#", BORDERS.sub(" ", line)).split())
        if flat:
            out.append(flat)
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """`expected` (normalised, with … wildcards) matches the whole of `actual` (normalised)."""
    segments: list[list[str]] = [[]]
    for line in expected:
        if line == ELLIPSIS:
            segments.append([])
        else:
            segments[-1].append(line)
    position = 0
    for index, segment in enumerate(segments):
        first, last = index == 0, index == len(segments) - 1
        if first:
            if actual[: len(segment)] != segment:
                return False
            position = len(segment)
            if last:
                return position == len(actual)
            continue
        if last:
            return (not segment or actual[-len(segment) :] == segment) and len(actual) - len(segment) >= position
        found = next(
            (i for i in range(position, len(actual) - len(segment) + 1) if actual[i : i + len(segment)] == segment),
            None,
        )
        if found is None:
            return False
        position = found + len(segment)
    return True


# -- running as a user would -------------------------------------------------------------------


class Shell:
    """Commands run by bash one at a time, the environment carried from one to the next (so
    that `eval "$(ledger sandbox env)"` works), in a fresh HOME."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.cwd = root / "work"
        self.home.mkdir()
        self.cwd.mkdir()
        self.env_file = root / "env"
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("POPBILL_", "LINKHUB_", "LEDGER_"))}
        inherited.pop("XDG_DATA_HOME", None)
        bin_dir = str(Path(sys.executable).parent)  # where `ledger` was installed
        self.env = {
            **inherited,
            "HOME": str(self.home),
            "PATH": bin_dir + os.pathsep + inherited.get("PATH", ""),
            "PYTHONUNBUFFERED": "1",  # stdout and stderr in the order written
            "COLUMNS": "200",
        }

    def run(self, command: str, stdin: str | None = None) -> tuple[int, str]:
        script = f'{command}\n__rc=$?\nenv -0 > "{self.env_file}"\nexit $__rc\n'
        done = subprocess.run(
            ["bash", "-c", script], cwd=self.cwd, env=self.env, input=stdin, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300,
        )  # fmt: skip
        if self.env_file.exists():
            pairs = self.env_file.read_bytes().split(b"\0")
            self.env = dict(p.decode().split("=", 1) for p in pairs if b"=" in p)
            self.env.pop("__rc", None)
        return done.returncode, done.stdout

    def our_processes(self) -> list[psutil.Process]:
        """Processes started by this walkthrough: their command line names our temporary root."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if any(str(self.root) in part for part in proc.info["cmdline"] or ()):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found

    def clean_up(self) -> None:
        """Stop the sandbox if a failure left it up; end any process of ours that remains."""
        self.run("ledger sandbox down")
        for proc in self.our_processes():
            proc.kill()


def walkthrough(shell: Shell, steps) -> list[tuple[str, int, str]]:
    return [(command, *shell.run(command)) for command, _ in steps]


def accountants_queries() -> list[str]:
    doc = ACCOUNTANTS.read_text(encoding="utf-8")
    block = doc[doc.index("-- 1.") : doc.index("```", doc.index("-- 1."))]
    return [q.strip() for q in re.split(r"\n(?=-- \d+\.)", block) if q.strip()]


# -- the test ------------------------------------------------------------------------------------


def check_demo_is_whole(output: str) -> None:
    """Every member reconciled and every statement balanced: one world, not two mixed."""
    assert "│ NO " not in output and "does not equal closing" not in output, output
    assert output.count("│ yes ") == 5, output


def test_first_hour_runs_as_printed():
    readme = README.read_text(encoding="utf-8")
    setup = setup_commands(readme)
    assert setup == ["ledger demo"], setup
    steps = console_steps(first_hour_section(readme))
    commands = [c for c, _ in steps]
    # The walkthrough's order: the set-up command first, then the steps as numbered.
    order = ["ledger demo", "ledger sandbox up", "ledger members", "ledger sync", "ledger status",
             "ledger balances", "ledger alerts", "ledger reconcile", "ledger report statement"]  # fmt: skip
    positions = [next(i for i, c in enumerate(commands) if c.startswith(word)) for word in order]
    assert positions == sorted(positions), commands

    # Not under pytest's tmp_path: a concurrent pytest session closes /tmp/pytest-of-<user> to
    # other users, and the embedded PostgreSQL runs as one.
    root = Path(tempfile.mkdtemp(prefix="ledger-first-hour-"))
    shell = Shell(root)
    try:
        for command in setup:  # what a new user types first, as the README's top says
            code, output = shell.run(command)
            assert code == 0, f"$ {command}\nexit {code}\n{output}"
            check_demo_is_whole(output)
        for command, expected in steps:
            code, output = shell.run(command)
            assert code == 0, f"$ {command}\nexit {code}\n{output}"
            want, got = normalise(expected), normalise(output.splitlines())
            assert matches(want, got), (
                f"$ {command}\n--- README shows:\n" + "\n".join(expected) + f"\n--- got:\n{output}"
            )
            if command.startswith("ledger demo"):
                check_demo_is_whole(output)
                check_demo_suggestions(shell, output)  # pasted right after the demo, as a user would
            if command == 'eval "$(ledger sandbox env)"':
                check_accountants_queries(shell)  # on the sandbox, through `ledger db shell`
        assert not shell.our_processes(), "the walkthrough left processes running"
    finally:
        shell.clean_up()
        shutil.rmtree(root, ignore_errors=True)


def check_demo_suggestions(shell: Shell, demo_output: str) -> None:
    from ledger.cli.commands.demo import SAMPLE_QUERY

    tail = demo_output[demo_output.index("Next (each line pastes as it is):") :].splitlines()[1:]
    suggestions = [line.strip() for line in tail if line.strip()]
    assert len(suggestions) == 3 and suggestions[-1].startswith("ledger sandbox up")
    shell_line, statement_line = suggestions[0], suggestions[1]
    # The query the demo offers, through the shell line it suggests (psql reads it from stdin).
    code, output = shell.run(shell_line.split("#")[0], stdin=SAMPLE_QUERY + ";\n")
    assert code == 0 and "points_used" in output and "1234567890" in output, output
    code, output = shell.run(statement_line)
    assert code == 0 and (shell.cwd / "s.xlsx").stat().st_size > 0, output


def check_accountants_queries(shell: Shell) -> None:
    queries = accountants_queries()
    assert len(queries) == 10
    code, output = shell.run("ledger db shell", stdin="\n\n".join(queries) + "\n")
    assert code == 0, output
    assert output.count(" rows)") + output.count(" row)") == 10, output


if __name__ == "__main__":  # print a fresh run, to paste into the README
    root = Path(tempfile.mkdtemp(prefix="ledger-first-hour-"))
    runner = Shell(root)
    try:
        readme = README.read_text()
        steps = [(command, []) for command in setup_commands(readme)] + console_steps(first_hour_section(readme))
        for command, code, output in walkthrough(runner, steps):
            print(f"$ {command}" + (f"    [exit {code}]" if code else ""))
            print(output.replace(str(runner.home), "~"), end="")
    finally:
        runner.clean_up()
        shutil.rmtree(root, ignore_errors=True)
