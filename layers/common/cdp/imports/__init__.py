"""Bulk import of files (CRM exports, offline purchases): rows -> the collector's events.

:func:`cdp.imports.run.import_rows` maps each row (:mod:`cdp.imports.mapping`), validates it with
the collector's :func:`cdp.collect.events.normalise_event`, quarantines the rejects with their row
number and sends the rest to the events stream with stable message ids.
"""

from .mapping import ImportMapping, load_mapping, parse_mapping
from .rows import message_id, row_to_event
from .run import ImportReport, Pacer, Row, import_rows

__all__ = ["ImportMapping", "ImportReport", "Pacer", "Row", "import_rows", "load_mapping", "message_id",
           "parse_mapping", "row_to_event"]
