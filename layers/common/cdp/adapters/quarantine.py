"""The quarantine: rejected events and unreadable bodies of known sources, as JSON lines on S3.

Objects live under ``quarantine/dt=YYYY-MM-DD/`` in the lake bucket (partitioned by the day the
collector received them), one JSON object per line. Lines are ASCII JSON, so no character in a
payload (U+2028, say) can be taken for a line break by a reader.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.collect.ingest import QuarantineEntry

PREFIX = "quarantine/"
#: The reason every failure of the quarantine gives (the collector's documented reason code).
_UNAVAILABLE = "quarantine_unavailable"


def entry_to_dict(entry: QuarantineEntry) -> dict[str, Any]:
    record: dict[str, Any] = {
        "reason": entry.reason,
        "sourceId": entry.source_id,
        "receivedAt": entry.received_at,
        "route": entry.route,
        "index": entry.index,
    }
    if entry.raw_body is not None:
        record["rawBody"] = base64.b64encode(entry.raw_body).decode("ascii")
        record["contentEncoding"] = entry.content_encoding
    else:
        record["payload"] = entry.payload
    for key, value in (
        ("ip", entry.ip),
        ("userAgent", entry.user_agent),
        ("sentAt", entry.sent_at),
        ("context", entry.context),
    ):
        if value is not None:
            record[key] = value
    return record


def entry_from_dict(record: dict[str, Any]) -> QuarantineEntry:
    raw = record.get("rawBody")
    return QuarantineEntry(
        reason=record["reason"],
        source_id=record["sourceId"],
        received_at=record["receivedAt"],
        route=record.get("route", "batch"),
        index=record.get("index"),
        payload=record.get("payload"),
        raw_body=base64.b64decode(raw) if raw is not None else None,
        content_encoding=record.get("contentEncoding"),
        ip=record.get("ip"),
        user_agent=record.get("userAgent"),
        sent_at=record.get("sentAt"),
        context=record.get("context"),
    )


def object_key(entries: Sequence[QuarantineEntry]) -> str:
    """``quarantine/dt=<day received>/<source>-<digest>.jsonl``; the digest leaves out the time
    received, so a retried request overwrites its own object instead of adding a copy."""
    first = entries[0]
    digest = hashlib.sha256()
    for entry in entries:
        stable = {k: v for k, v in entry_to_dict(entry).items() if k != "receivedAt"}
        digest.update(json.dumps(stable, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    day = first.received_at[:10]
    return f"{PREFIX}dt={day}/{first.source_id}-{digest.hexdigest()[:32]}.jsonl"


class S3Quarantine(AwsAdapter):
    service = "s3"

    def put(self, entries: Sequence[QuarantineEntry]) -> None:
        """Store ``entries`` as one object per (day, source). Raises :class:`StoreError`."""
        groups: dict[tuple[str, str], list[QuarantineEntry]] = {}
        for entry in entries:
            groups.setdefault((entry.received_at[:10], entry.source_id), []).append(entry)
        for group in groups.values():
            with aws_errors(_UNAVAILABLE):
                self.client.put_object(
                    Bucket=self.settings.lake_bucket,
                    Key=object_key(group),
                    Body=_lines(group),
                    ContentType="application/x-ndjson",
                )

    def keys(self, *, day_from: str | None = None, day_to: str | None = None) -> list[str]:
        """Object keys under ``quarantine/``, oldest day first, days inclusive."""
        start_after = f"{PREFIX}dt={day_from}" if day_from else ""
        found: list[str] = []
        with aws_errors(_UNAVAILABLE):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.settings.lake_bucket, Prefix=f"{PREFIX}dt=", StartAfter=start_after
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    day = _day_of(obj["Key"])
                    if day_to and day > day_to:
                        return found
                    if not day_from or day >= day_from:
                        found.append(obj["Key"])
        return found

    def read(self, key: str) -> list[QuarantineEntry]:
        with aws_errors(_UNAVAILABLE, key=key):
            body = self.client.get_object(Bucket=self.settings.lake_bucket, Key=key)["Body"].read()
        return [
            entry_from_dict(json.loads(line)) for line in body.decode("utf-8").split("\n") if line.strip()
        ]

    def rewrite(self, key: str, entries: Sequence[QuarantineEntry]) -> None:
        """Keep only ``entries`` in ``key`` (the bucket is versioned: earlier contents stay readable)."""
        with aws_errors(_UNAVAILABLE, key=key):
            if entries:
                self.client.put_object(
                    Bucket=self.settings.lake_bucket,
                    Key=key,
                    Body=_lines(entries),
                    ContentType="application/x-ndjson",
                )
            else:
                self.client.delete_object(Bucket=self.settings.lake_bucket, Key=key)


def _lines(entries: Sequence[QuarantineEntry]) -> bytes:
    return "".join(json.dumps(entry_to_dict(e), separators=(",", ":")) + "\n" for e in entries).encode(
        "utf-8"
    )


def _day_of(key: str) -> str:
    # quarantine/dt=YYYY-MM-DD/...
    part = key[len(PREFIX) :].split("/", 1)[0]
    return part[3:] if part.startswith("dt=") else ""
