"""A one-item hand-over between the subscription callback and the inference thread."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

Item = TypeVar("Item")


class LatestFrameSlot(Generic[Item]):
    """Holds at most one unprocessed item: putting a new one replaces (drops) the old one.

    The producer never waits and the consumer always gets the newest item, so latency stays
    at most one processing time however fast items arrive, and memory stays bounded to
    the one pending item plus the one being processed.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._item: Item | None = None
        self._closed = False

    def put(self, item: Item) -> bool:
        """Offer ``item``; returns ``True`` when it replaced an item nobody had taken (a drop)."""
        with self._condition:
            replaced = self._item is not None
            self._item = item
            self._condition.notify()
            return replaced

    def take(self) -> Item | None:
        """Wait for an item and remove it; ``None`` once :meth:`close` was called."""
        with self._condition:
            while self._item is None and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        """Wake the consumer for good; pending and later items are discarded."""
        with self._condition:
            self._closed = True
            self._item = None
            self._condition.notify_all()
