"""What the hostile-upstream checks cost, side by side with what each row already costs.

    python bench/screening_bench.py [--rows 200000] [--pages 200]

Per row: screen_row beside UseHistory.from_wire, the row key and the whole client-side
preparation of a usage page (typing, key, COPY line), on the simulator's rows decoded as the
client decodes them; the one pass the sync makes (screen_usage_copy: both, to bytes); and
decoding a page with the standard library and Decimal beside orjson where exact. Per page: fetching a 1,000-row page from the simulator
through the bounded transport (streamed, size-capped, with a deadline watchdog) beside a
plain requests `.content` read. CPU time and wall time, and the ratios.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger import jsonutil  # noqa: E402
from ledger.history import identity  # noqa: E402
from ledger.history.screening import RowLimits, screen_row  # noqa: E402
from ledger.history.usage_page import screen_usage_copy  # noqa: E402
from ledger.history.writer import prepare_usage_copy  # noqa: E402
from ledger.popbill.models import UseHistory  # noqa: E402
from ledger.popbill.transport import Transport  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from ledger.simulator import SimConfig, Simulator  # noqa: E402


def timed(fn) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def line(name: str, wall: float, cpu: float, n: int, unit: str, base: float | None = None) -> None:
    ratio = f"  ({cpu / base:.2f}x of the base)" if base else ""
    print(f"  {name:<44} {wall / n * 1e6:8.2f} µs wall  {cpu / n * 1e6:8.2f} µs CPU per {unit}{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()

    per_day = args.rows / 365
    with Simulator(SimConfig(seed=1, history_days=365, usage_per_day=per_day)) as sim:
        wire = json.dumps(sim.world.usage_truth("1234567890")[: args.rows])
        rows = json.loads(wire, parse_float=Decimal)  # as the client decodes them
        limits = RowLimits.for_sync(Settings(), sim.world.today())
        n = len(rows)
        assert all(screen_row("usage", r, limits) is None for r in rows), "a simulator row was refused"
        print(f"{n:,} simulator usage rows, {len(wire) / n:.0f} bytes each on the wire")

        pages = [rows[i : i + 1000] for i in range(0, n, 1000)]
        bodies = [jsonutil.dumps({"list": p}).encode() for p in pages]
        prepare_wall, prepare_cpu = timed(
            lambda: [prepare_usage_copy(1, p, identity.OccurrenceCounter()) for p in pages]
        )
        print("per row (one thread):")
        line("prepare a usage page (key, COPY line)", prepare_wall, prepare_cpu, n, "row")
        w, c = timed(lambda: [UseHistory.from_wire(r) for r in rows])
        line("UseHistory.from_wire (no longer on the usage path)", w, c, n, "row")
        base = prepare_cpu
        line("  = client-side cost per usage row", prepare_wall, base, n, "row")
        w, c = timed(lambda: [screen_row("usage", r, limits) for r in rows])
        line("screen_row", w, c, n, "row", base)
        w, c = timed(lambda: [screen_usage_copy(1, p, identity.OccurrenceCounter(), limits) for p in pages])
        line("screen_usage_copy (both in one pass, as bytes)", w, c, n, "row", base)
        w, c = timed(lambda: [json.loads(b.decode(), parse_float=Decimal, strict=False) for b in bodies])
        line("decode: json.loads with Decimal (before)", w, c, n, "row")
        w, c = timed(lambda: [jsonutil.loads(b) for b in bodies])
        line("decode: jsonutil.loads (orjson where exact)", w, c, n, "row")

        url = f"{sim.url}/UseHistory"
        settings = Settings().with_hosts(sim.url)
        from ledger.popbill import PopbillClient

        with PopbillClient(settings) as client:
            token = client.requestor.tokens.get("1234567890").session_token.reveal()
        today = sim.world.today()
        query = {"SDate": f"{today - dt.timedelta(days=364):%Y%m%d}", "EDate": f"{today:%Y%m%d}", "PerPage": 1000}
        headers = {"Authorization": f"Bearer {token}", "x-pb-version": "1.0", "Accept-Encoding": "gzip,deflate"}
        full = f"{url}?" + "&".join(f"{k}={v}" for k, v in query.items())
        session = requests.Session()
        transport = Transport(connect_timeout=5, read_timeout=30)
        _ = session.get(full + "&Page=1", headers=headers, timeout=30).content  # warm the simulator's cache
        pages_n = min(args.pages, max(1, n // 1000))

        def plain():
            for p in range(1, pages_n + 1):
                _ = session.get(f"{full}&Page={p}", headers=headers, timeout=30).content

        def bounded():
            for p in range(1, pages_n + 1):
                transport.send("GET", f"{full}&Page={p}", headers=headers, body=None, call="bench",
                               deadline=time.monotonic() + 120)  # fmt: skip

        print(f"per 1,000-row page over HTTP from the simulator ({pages_n} pages, gzip):")
        pw, pc = timed(plain)
        line("requests .content (before)", pw, pc, pages_n, "page")
        bw, bc = timed(bounded)
        line("bounded transport (after)", bw, bc, pages_n, "page", pc)
        transport.close()
        session.close()
        print(f"settings used: {dataclasses.asdict(limits)}")


if __name__ == "__main__":
    main()
