"""How the package's modules import each other: every module imports alone, nothing imports
in a circle, domain packages never import the command line, nothing imports the repository's
root `workers` module, and an import inside a function says why it is there."""

from __future__ import annotations

import ast
import collections
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ledger"
LAZY_MARK = "lazy:"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# ledger/__main__.py is `python -m ledger`: a script that runs the command line when imported.
MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(sub) for sub in ast.walk(node))
    return inside


def imports(path: Path) -> list[tuple[ast.stmt, list[str], bool]]:
    """(statement, the modules it names, whether it runs inside a function), TYPE_CHECKING left out."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = _type_checking_nodes(tree)
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function.update(id(sub) for sub in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.append((node, [a.name for a in node.names], id(node) in in_function))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found.append((node, names, id(node) in in_function))
    return found


def _resolve(name: str) -> str | None:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def test_every_module_imports_alone_in_a_fresh_interpreter():
    # One interpreter with every third-party module the package uses already loaded (listed by a
    # child that imports the whole package), forked once per module, two at a time: each child
    # starts with no ledger module imported, as a fresh `python -c "import <module>"` would. A
    # model's columns must have their types once it is imported alone: a foreign key to a table
    # whose model was not imported has none, and breaks statements that cast it (ANY(:array)).
    script = f"""
import os, sys, traceback
names = {sorted(MODULES)!r}

def third_party():
    read, write = os.pipe()
    if os.fork() == 0:
        os.close(read)
        for name in names:
            try:
                __import__(name)
            except BaseException:
                pass
        listed = [m for m in sys.modules if not m.startswith(("ledger", "__main__", "__mp_main__"))]
        os.write(write, "\\n".join(listed).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        listed = pipe.read().split()
    os.wait()
    return listed

for module in third_party():
    try:
        __import__(module)
    except BaseException:
        pass

def check(name):
    __import__(name)
    base = sys.modules.get("ledger.db.base")
    untyped = [f"{{table.name}}.{{column.name}}" for table in (base.Base.metadata.tables.values() if base else ())
               for column in table.columns if type(column.type).__name__ == "NullType"]
    if untyped:
        raise AssertionError(f"{{name}}: columns without a type (import the model they refer to): {{untyped}}")

failed, running = [], {{}}
for name in names:
    if len(running) >= 2:
        pid, status = os.wait()
        if status:
            failed.append(running[pid])
        del running[pid]
    pid = os.fork()
    if pid == 0:
        try:
            check(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    running[pid] = name
while running:
    pid, status = os.wait()
    if status:
        failed.append(running[pid])
    del running[pid]
print("FAILED", sorted(failed))
sys.exit(1 if failed else 0)
"""
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-6000:]


def test_no_module_imports_in_a_circle():
    graph = collections.defaultdict(set)
    for name, path in MODULES.items():
        for _, names, _ in imports(path):  # imports inside functions too: they hide circles as well
            for imported in names:
                target = _resolve(imported) if imported.startswith("ledger") else None
                # A package's __init__ that re-exports its modules is not a circle of its own.
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    # Tarjan's strongly connected components: any with more than one module is a circle.
    index, low, stack, on_stack, circles = {}, {}, [], set(), []
    counter = iter(range(10**6))

    def visit(v: str) -> None:
        index[v] = low[v] = next(counter)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in list(MODULES):
        if v not in index:
            visit(v)
    assert circles == []


def test_an_import_inside_a_function_says_why():
    unexplained = []
    for path in MODULES.values():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node, _, in_function in imports(path):
            if not in_function:
                continue
            # The reason is on the import's line, or on the comment line above its group of imports.
            above = node.lineno - 2
            while above >= 0 and (not lines[above].strip() or lines[above].strip().startswith(("import ", "from "))):
                above -= 1
            here = lines[node.lineno - 1]
            if LAZY_MARK not in here and not (above >= 0 and LAZY_MARK in lines[above]):
                unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {here.strip()}")
    assert unexplained == [], "imports inside functions need a '# lazy: why' comment:\n" + "\n".join(unexplained)


@pytest.mark.parametrize("rule", ["domain packages do not import ledger.cli", "nothing imports the root workers"])
def test_imports_point_downward(rule):
    offending = []
    for name, path in MODULES.items():
        for node, names, _ in imports(path):
            if rule.startswith("domain"):
                bad = not name.startswith("ledger.cli") and any(n == "ledger.cli" or n.startswith("ledger.cli.") for n in names)
            else:
                bad = any(n == "workers" or n.startswith("workers.") for n in names)
            if bad:
                offending.append(f"{name}:{node.lineno}")
    assert offending == []
