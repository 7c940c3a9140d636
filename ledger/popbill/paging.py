"""Lazy iteration over paged history calls, one page in memory at a time.

Each page is checked against the first: the same total, a pageCount that matches
total/perPage, and as many rows as that page should hold. A disagreement means rows
were inserted or removed while paging, and the caller must start the window again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from ledger.popbill.errors import PagingError
from ledger.popbill.models import Page


def iter_pages(fetch: Callable[[int], Page], *, call: str) -> Iterator[Page]:
    first: Page | None = None
    received = 0
    page_no = 1
    while True:
        page = fetch(page_no)
        if first is None:
            first = page
        elif page.total != first.total:
            raise PagingError(f"total changed from {first.total} to {page.total} on page {page_no}", call=call)
        per_page = page.per_page or len(page.items) or 1
        expected_pages = math.ceil(page.total / per_page)
        if page.page_count not in (expected_pages, max(expected_pages, 1)):
            raise PagingError(
                f"pageCount {page.page_count} disagrees with total {page.total} / perPage {per_page}", call=call
            )
        expected_rows = max(0, min(per_page, page.total - (page_no - 1) * per_page))
        if len(page.items) != expected_rows:
            raise PagingError(f"page {page_no} held {len(page.items)} rows, expected {expected_rows}", call=call)
        received += len(page.items)
        yield page
        if page_no >= expected_pages:
            break
        page_no += 1
    if received != first.total:
        raise PagingError(f"received {received} rows, total said {first.total}", call=call)
