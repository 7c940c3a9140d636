"""The SQL statements and commits of a process the night bench runs, counted for its
per-member figures. Python imports this at start-up because the bench puts this folder on
PYTHONPATH; it counts only when NIGHT_BENCH_COUNTS names a folder, where it writes
"<statements> <commits>" to a file named for the process every 0.2 s and at exit.

Counted at psycopg's cursor, under SQLAlchemy and under the ledger's driver-level statements
alike: an execute is one statement, an executemany one per parameter set, a COPY one."""

from __future__ import annotations

import os

FOLDER = os.environ.get("NIGHT_BENCH_COUNTS")

if FOLDER:
    import atexit
    import threading

    import psycopg

    _lock = threading.Lock()
    _counts = [0, 0]  # statements, commits

    def _add(index: int, n: int = 1) -> None:
        with _lock:
            _counts[index] += n

    def _counted(method, index: int, many: bool = False):
        def wrapper(self, *args, **kwargs):
            if many:
                params = args[1] if len(args) > 1 else kwargs.get("params_seq", ())
                try:
                    _add(index, len(params))
                except TypeError:  # an iterator: counted as it goes
                    params = list(params)
                    _add(index, len(params))
                    args = (args[0], params, *args[2:])
            else:
                _add(index)
            return method(self, *args, **kwargs)

        return wrapper

    psycopg.Cursor.execute = _counted(psycopg.Cursor.execute, 0)
    psycopg.Cursor.executemany = _counted(psycopg.Cursor.executemany, 0, many=True)
    psycopg.Cursor.copy = _counted(psycopg.Cursor.copy, 0)
    psycopg.ServerCursor.execute = _counted(psycopg.ServerCursor.execute, 0)
    psycopg.Connection.commit = _counted(psycopg.Connection.commit, 1)

    def _flush() -> None:
        with _lock:
            line = f"{_counts[0]} {_counts[1]}"
        path = os.path.join(FOLDER, str(os.getpid()))
        with open(f"{path}.tmp", "w") as out:
            out.write(line)
        os.replace(f"{path}.tmp", path)

    def _writer() -> None:
        stop = threading.Event()
        while not stop.wait(0.2):
            _flush()

    def _start() -> None:
        threading.Thread(target=_writer, name="night-bench-counts", daemon=True).start()

    def _in_child() -> None:  # a forked child counts its own from zero
        global _lock
        _lock = threading.Lock()
        _counts[0] = _counts[1] = 0
        _start()

    os.register_at_fork(after_in_child=_in_child)
    atexit.register(_flush)
    _start()
