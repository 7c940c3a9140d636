"""Paths as a person types them: the home folder as ~, so printed commands paste anywhere."""

from __future__ import annotations

import shlex
from pathlib import Path


def typed_path(path: Path) -> str:
    """`~/rest` under the home folder (the shell expands ~ even in VAR=~/... assignments)."""
    try:
        rest = path.expanduser().resolve().relative_to(Path.home().resolve())
    except ValueError:
        return shlex.quote(str(path))
    return "~/" + shlex.quote(str(rest)) if str(rest) != "." else "~"
