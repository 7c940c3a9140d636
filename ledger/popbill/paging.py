"""Lazy iteration over paged history calls, one page in memory at a time.

Each page is checked against the first: the same total, perPage and pageCount, a pageCount
that matches total/perPage, and as many rows as that page should hold. A disagreement means
rows were inserted or removed while paging, and the caller must start the window again.

The first page's declaration bounds the walk, and so does a sanity cap (`max_pages`): a
server declaring a billion rows is refused before the second call rather than paged for
hours. A page whose rows are exactly those of the page before is refused too: a server that
ignores the Page parameter would otherwise have the same rows stored once per page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from ledger.popbill.errors import PagingError
from ledger.popbill.models import Page

DEFAULT_MAX_PAGES = 10_000


def iter_pages(fetch: Callable[[int], Page], *, call: str, max_pages: int = DEFAULT_MAX_PAGES) -> Iterator[Page]:
    first: Page | None = None
    previous_items: tuple | None = None
    received = 0
    page_no = 1
    while True:
        page = fetch(page_no)
        per_page = page.per_page or len(page.items) or 1
        expected_pages = math.ceil(page.total / per_page)
        if first is None:
            first = page
            if expected_pages > max_pages:
                raise PagingError(
                    f"the listing declares {page.total} rows in {expected_pages} pages, over the limit of "
                    f"{max_pages} pages (POPBILL_MAX_PAGES)",
                    call=call,
                )
        elif page.total != first.total:
            raise PagingError(f"total changed from {first.total} to {page.total} on page {page_no}", call=call)
        elif (page.per_page, page.page_count) != (first.per_page, first.page_count):
            raise PagingError(
                f"page {page_no} declares perPage {page.per_page} and pageCount {page.page_count}, "
                f"page 1 declared {first.per_page} and {first.page_count}",
                call=call,
            )
        if page.page_count not in (expected_pages, max(expected_pages, 1)):
            raise PagingError(
                f"pageCount {page.page_count} disagrees with total {page.total} / perPage {per_page}", call=call
            )
        expected_rows = max(0, min(per_page, page.total - (page_no - 1) * per_page))
        if len(page.items) != expected_rows:
            raise PagingError(f"page {page_no} held {len(page.items)} rows, expected {expected_rows}", call=call)
        if page.items and page.items == previous_items:
            raise PagingError(f"page {page_no} repeats page {page_no - 1} row for row", call=call)
        previous_items = page.items
        received += len(page.items)
        yield page
        if page_no >= expected_pages:
            break
        page_no += 1
    if received != first.total:
        raise PagingError(f"received {received} rows, total said {first.total}", call=call)
