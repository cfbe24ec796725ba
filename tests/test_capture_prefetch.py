"""Read-ahead: the same items in the same order, the producer's exception re-raised, and a consumer that
stops early stops the producer thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from resetlens.capture import open_capture
from resetlens.capture.prefetch import prefetched
from resetlens.errors import CaptureError
from tests.conftest import LAB_FIXTURES


def test_same_items_in_order() -> None:
    assert list(prefetched(iter(range(1000)), depth=2)) == list(range(1000))
    assert list(prefetched(iter([]))) == []


def test_same_chunks_as_the_reader() -> None:
    path = next(LAB_FIXTURES.glob("*/captures/*.pcap"))
    plain = [c.table.tobytes() for c in open_capture(path).chunks()]
    ahead = [c.table.tobytes() for c in prefetched(open_capture(path).chunks())]
    assert ahead == plain and plain


def test_exception_reaches_the_consumer_after_the_good_items() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise CaptureError("truncated record", path="x.pcap", offset=24)

    got = []
    with pytest.raises(CaptureError, match="truncated record"):
        for x in prefetched(items()):
            got.append(x)
    assert got == [1, 2]


def test_early_stop_ends_the_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while n < 10_000_000:  # bounded, far more than anyone reads
                yield n
                n += 1
        finally:
            closed.set()

    before = {t.ident for t in threading.enumerate()}
    gen = prefetched(endless(), depth=2)
    assert [next(gen) for _ in range(5)] == [0, 1, 2, 3, 4]
    gen.close()
    assert closed.wait(5)
    assert not [
        t for t in threading.enumerate() if t.ident not in before and t.name == "resetlens-read-ahead"
    ]
