"""The paging generator's own checks: pages that disagree are caught."""

from __future__ import annotations

import pytest

from ledger.popbill.errors import PagingError
from ledger.popbill.models import Page
from ledger.popbill.paging import iter_pages


def make_page(total, per_page, page_no, n_items, page_count=None):
    count = page_count if page_count is not None else -(-total // per_page)
    return Page(1, total, per_page, page_no, count, tuple((page_no, i) for i in range(n_items)), {})


def pages_from(spec):
    def fetch(page_no):
        return spec[page_no - 1]

    return fetch


def test_walks_every_page_lazily():
    fetched = []
    spec = [make_page(5, 2, 1, 2), make_page(5, 2, 2, 2), make_page(5, 2, 3, 1)]

    def fetch(p):
        fetched.append(p)
        return spec[p - 1]

    gen = iter_pages(fetch, call="t")
    assert fetched == []
    next(gen)
    assert fetched == [1]
    assert sum(len(p.items) for p in gen) == 3
    assert fetched == [1, 2, 3]


def test_empty_result_is_one_page():
    assert [len(p.items) for p in iter_pages(pages_from([make_page(0, 1000, 1, 0)]), call="t")] == [0]


@pytest.mark.parametrize(
    "spec",
    [
        [make_page(5, 2, 1, 2), make_page(6, 2, 2, 2)],  # total grew while paging
        [make_page(5, 2, 1, 2, page_count=2)],  # pageCount disagrees with total
        [make_page(5, 2, 1, 1)],  # short page
        [make_page(5, 2, 1, 2), make_page(5, 2, 2, 2), make_page(5, 2, 3, 0)],  # rows vanished
    ],
)
def test_inconsistent_pages_raise(spec):
    with pytest.raises(PagingError):
        list(iter_pages(pages_from(spec), call="t"))
