"""Import one file: a local path (``cdp import``) or an object under the lake's ``imports/`` prefix."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cdp.collect.ingest import EventSink, Quarantine
from cdp.errors import CdpError
from cdp.identity.config import IdentityConfig
from cdp.imports.files import file_format, read_rows
from cdp.imports.mapping import ImportMapping, load_mapping
from cdp.imports.run import ImportReport, Pacer, import_rows
from cdp.times import format_time

#: Batches between two checkpoints of an object's import (and always before a run stops early).
COMMIT_EVERY = 10


def import_file(
    path: str | Path,
    *,
    mapping: ImportMapping,
    identity: IdentityConfig,
    sink: EventSink,
    quarantine: Quarantine,
    now: datetime,
    source_id: str | None = None,
    file_id: str | None = None,
    pacer: Pacer | None = None,
    report: ImportReport | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    commit: Callable[[ImportReport], None] | None = None,
    commit_every: int = 1,
) -> ImportReport:
    """Import every row of ``path`` (after ``report.next_row`` when resuming). ``file_id`` (default:
    the file's name) goes into every message id: the same file imported again sends the same ids."""
    path = Path(path)
    fmt = file_format(path.name)
    if report is None:
        report = ImportReport(source_id=source_id or mapping.source_id, mapping=mapping.name,
                              file=file_id or path.name, format=fmt, started_at=format_time(now))
    report.invocations += 1
    return import_rows(read_rows(path, fmt, columns=mapping.columns), mapping=mapping, identity=identity,
                       report=report, sink=sink, quarantine=quarantine, now=now, pacer=pacer,
                       should_stop=should_stop, commit=commit, commit_every=commit_every)


class ImportObjects(Protocol):
    def download(self, key: str, destination: Path) -> str: ...
    def read_checkpoint(self, key: str) -> dict[str, Any] | None: ...
    def write_checkpoint(self, key: str, data: dict[str, Any]) -> None: ...
    def delete_checkpoint(self, key: str) -> None: ...
    def write_report(self, key: str, report: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ObjectImport:
    """The outcome for one object: its report (None when the object could not be imported at all)."""

    key: str
    report: ImportReport | None
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is not None or (self.report is not None and self.report.complete)


def import_object(
    key: str,
    *,
    objects: ImportObjects,
    mappings: Path,
    identity: IdentityConfig,
    sink: EventSink,
    quarantine: Quarantine,
    now: datetime,
    pacer: Pacer | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    scratch: Path | None = None,
) -> ObjectImport:
    """Import ``imports/<mapping>/<file>``, resuming from its checkpoint, and write its report.

    A file that cannot be imported (no such mapping, an invalid mapping, an unknown format) gets a
    report naming the error and is not retried. When ``should_stop()`` ends the run early the
    checkpoint stays and the report says ``complete: false``; the caller starts another run.
    """
    from cdp.adapters.imports import mapping_name

    name = mapping_name(key)
    file_id = key.rsplit("/", 1)[-1]
    try:
        file_format(file_id)
        mapping = load_mapping(mappings / f"{name}.yaml", identity=identity)
    except CdpError as exc:
        error = exc.reason if exc.reason != "invalid_config" else str(exc)
        objects.write_report(key, {"object": key, "mapping": name, "complete": False, "error": error,
                                   "finished_at": format_time(now)})
        return ObjectImport(key, None, error)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        local = Path(tmp) / file_id
        etag = objects.download(key, local)
        checkpoint = objects.read_checkpoint(key)
        report = None
        if checkpoint and checkpoint.get("etag") == etag:
            report = ImportReport.from_checkpoint(checkpoint)

        def commit(progress: ImportReport) -> None:
            objects.write_checkpoint(key, {**progress.to_checkpoint(), "etag": etag, "object": key})

        report = import_file(local, mapping=mapping, identity=identity, sink=sink, quarantine=quarantine,
                             now=now, file_id=file_id, pacer=pacer, report=report,
                             should_stop=should_stop, commit=commit, commit_every=COMMIT_EVERY)
    objects.write_report(key, {**report.to_dict(), "object": key})
    if report.complete:
        objects.delete_checkpoint(key)
    return ObjectImport(key, report)
