"""Each domain's models are whole on their own: imported alone (as a command that loads only its
own modules does), every column knows its type. A foreign key whose type is left to the table it
names is NullType until that table is imported, and a query binding it as an array fails then."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts) for p in (ROOT / "ledger").glob("*/models.py"))


def test_every_column_has_its_type_when_its_models_are_imported_alone():
    script = f"""
import os, sys
import sqlalchemy, sqlalchemy.orm
from sqlalchemy.types import NullType
untyped = []
for name in {MODELS!r}:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        __import__(name)
        from ledger.db.base import Base
        found = [f"{{t.name}}.{{c.name}}" for t in Base.metadata.tables.values() for c in t.columns
                 if isinstance(c.type, NullType)]
        os.write(write, (name + ": " + ", ".join(found)).encode() if found else b"")
        os._exit(0)
    os.close(write)
    report = os.read(read, 65536).decode()
    os.waitpid(pid, 0)
    if report:
        untyped.append(report)
print("\\n".join(untyped))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", done.stdout
    assert len(MODELS) >= 10
