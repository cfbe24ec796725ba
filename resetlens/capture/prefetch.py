"""Read ahead: run a chunk iterator in a background thread, a few chunks ahead of its consumer.

Reading and decoding a block (file reads, the C record walk and decode, numpy) and tracking TCP
connections over the previous one are independent; the parts that release the GIL (file reads, the C
walker, most numpy calls) then run on a second core while the tracker works. Order, values and
exceptions are those of the plain iterator.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

DEPTH = 3  # chunks read ahead at most (bounds the memory the read-ahead holds)
POLL = 0.1  # seconds between checks that the consumer is still there (a bounded wait, never a hang)
_DONE = object()  # end of the iterator


class _Failed:
    """The producer raised: the consumer re-raises the same exception."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(items: Iterator[T], depth: int = DEPTH) -> Iterator[T]:
    """Yield what `items` yields, produced in a background thread up to `depth` items ahead."""
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()

    worker = threading.Thread(target=produce, name="resetlens-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


__all__ = ["prefetched"]
