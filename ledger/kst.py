"""Korean time: Popbill writes every date-time as Asia/Seoul local time with no zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

KST = ZoneInfo("Asia/Seoul")


def now_kst() -> dt.datetime:
    return dt.datetime.now(KST).replace(microsecond=0)


def today_kst() -> dt.date:
    return now_kst().date()


def parse_popbill_datetime(value: str | None) -> dt.datetime | None:
    """Parse yyyyMMdd or yyyyMMddHHmmss (Korean local time) into an aware datetime.

    ISO basic format through fromisoformat: this runs once per history row, and strptime
    is ten times slower.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not value.isdigit() or len(value) not in (8, 14):
        raise ValueError(f"not a Popbill date-time (yyyyMMdd[HHmmss]): {value!r}")
    text = value if len(value) == 8 else f"{value[:8]}T{value[8:]}"
    return dt.datetime.fromisoformat(text).replace(tzinfo=KST)
