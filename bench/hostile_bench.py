"""What a hostile answer costs the client: bytes read and peak memory, one case per process.

    python bench/hostile_bench.py [--mib 200] [--tree PATH]

Cases: a 200 MiB answer (one row's userName) sent chunked, and a gzip bomb inflating to the
same size from a few hundred KB. Each runs in a fresh process against tests/hostile.py's
server with the default settings and prints whether the answer was accepted, what was read,
the peak RSS and the time. `--tree` runs the same against another checkout (for example the
code before the limits: `git archive <commit> | tar -x -C /tmp/before`, with tests/hostile.py
copied in).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ONE_CASE = r"""
import datetime as dt, resource, sys, time
sys.path.insert(0, sys.argv[1])
from ledger.popbill import PopbillClient
from ledger.settings import Settings
import tests.hostile as hostile
case, size = sys.argv[2], int(sys.argv[3])
answer = hostile.Huge(size) if case == "huge" else hostile.GzipBomb(size)
server = hostile.HostileServer(lambda path, page_no: answer)
if case == "bomb":
    server._bombs[size] = hostile._bomb(size)  # built before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
settings = Settings.from_env({"POPBILL_API_URL": server.url, "LINKHUB_AUTH_URL": server.url,
                              "POPBILL_RETRY_ATTEMPTS": "1"})
wall, cpu = time.perf_counter(), time.process_time()
with PopbillClient(settings) as client:
    try:
        page = client.get_use_history("1234567890", dt.date(2026, 11, 20), dt.date(2026, 11, 20))
        outcome = f"ACCEPTED, a userName of {len(page.items[0].user_name):,} characters"
    except Exception as exc:
        outcome = (f"refused ({type(exc).__name__}) after reading {getattr(exc, 'received', 0):,} bytes "
                   f"decoding to {getattr(exc, 'decoded', 0):,}")
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"  {case:<5} {outcome}; peak RSS {peak:.0f} MB ({before:.0f} MB before the call); {wall:.2f} s wall, {cpu:.2f} s CPU")
server.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=200, help="size of the answer, decoded")
    parser.add_argument("--tree", default=str(Path(__file__).resolve().parents[1]), help="checkout to measure")
    args = parser.parse_args()
    print(f"{args.tree}: a {args.mib} MiB answer")
    for case in ("huge", "bomb"):
        subprocess.run([sys.executable, "-c", ONE_CASE, args.tree, case, str(args.mib * 2**20)], check=True)


if __name__ == "__main__":
    main()
