"""Fakes the collector's unit tests share."""

from __future__ import annotations

from collections.abc import Sequence

from cdp.collect.events import OutgoingRecord
from cdp.errors import StreamUnavailable


class ListSink:
    """An event sink in a list; ``fail`` makes every put raise as an unavailable stream does."""

    def __init__(self, fail: bool = False) -> None:
        self.records: list[OutgoingRecord] = []
        self.fail = fail

    def put(self, records: Sequence[OutgoingRecord]) -> None:
        if self.fail:
            raise StreamUnavailable("stream_write_failed")
        self.records.extend(records)
