"""The lake's ``imports/`` prefix: the files dropped there, their checkpoints and their reports.

``imports/<mapping>/<file>`` is a file to import with ``config/imports/<mapping>.yaml``; what the
import function writes lives under ``imports/_reports/`` and ``imports/_checkpoints/`` (keys whose
first part starts with ``_`` are never imported, so writing a report does not start an import).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.settings import Settings

PREFIX = "imports/"
REPORTS = f"{PREFIX}_reports/"
CHECKPOINTS = f"{PREFIX}_checkpoints/"


def is_import_key(key: str) -> bool:
    """True for a file to import: ``imports/<mapping>/<file>``, not a report, checkpoint or folder."""
    if not key.startswith(PREFIX) or key.endswith("/"):
        return False
    parts = key[len(PREFIX):].split("/")
    return len(parts) >= 2 and not parts[0].startswith("_") and not parts[-1].startswith(("_", "."))


def mapping_name(key: str) -> str:
    return key[len(PREFIX):].split("/", 1)[0]


def report_key(key: str) -> str:
    return f"{REPORTS}{key[len(PREFIX):]}.json"


def checkpoint_key(key: str) -> str:
    return f"{CHECKPOINTS}{key[len(PREFIX):]}.json"


class S3Imports(AwsAdapter):
    service = "s3"

    def download(self, key: str, destination: Path) -> str:
        """Copy the object to ``destination`` (streamed to disk); returns its ETag."""
        with aws_errors("import_read_failed", key=key):
            head = self.client.head_object(Bucket=self.settings.lake_bucket, Key=key)
            self.client.download_file(self.settings.lake_bucket, key, str(destination))
        return str(head.get("ETag", "")).strip('"')

    def read_checkpoint(self, key: str) -> dict[str, Any] | None:
        with aws_errors("import_checkpoint_failed", key=key):
            try:
                body = self.client.get_object(Bucket=self.settings.lake_bucket, Key=checkpoint_key(key))["Body"]
            except self.client.exceptions.NoSuchKey:
                return None
            data = json.loads(body.read())
        return data if isinstance(data, dict) else None

    def write_checkpoint(self, key: str, data: dict[str, Any]) -> None:
        self._put(checkpoint_key(key), data, "import_checkpoint_failed")

    def delete_checkpoint(self, key: str) -> None:
        with aws_errors("import_checkpoint_failed", key=key):
            self.client.delete_object(Bucket=self.settings.lake_bucket, Key=checkpoint_key(key))

    def write_report(self, key: str, report: dict[str, Any]) -> None:
        self._put(report_key(key), report, "import_report_failed")

    def read_report(self, key: str) -> dict[str, Any]:
        with aws_errors("import_report_failed", key=key):
            body = self.client.get_object(Bucket=self.settings.lake_bucket, Key=report_key(key))["Body"]
            return dict(json.loads(body.read()))

    def _put(self, key: str, data: dict[str, Any], reason: str) -> None:
        with aws_errors(reason, key=key):
            self.client.put_object(Bucket=self.settings.lake_bucket, Key=key, ContentType="application/json",
                                   Body=json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))


class LambdaContinuation(AwsAdapter):
    """Starts the import function again, asynchronously, to go on where this invocation stopped."""

    service = "lambda"

    def __init__(self, settings: Settings, function_arn: str, *, client: Any = None) -> None:
        super().__init__(settings, client=client)
        self._function_arn = function_arn

    def __call__(self, bucket: str, key: str) -> None:
        payload = {"continuation": True, "detail": {"bucket": {"name": bucket}, "object": {"key": key}}}
        with aws_errors("import_continuation_failed", key=key):
            self.client.invoke(FunctionName=self._function_arn, InvocationType="Event",
                          Payload=json.dumps(payload).encode("utf-8"))


def object_events(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) of each object an event names: EventBridge "Object Created" (and our own
    continuations) or an S3 notification's records (keys URL-encoded there)."""
    from urllib.parse import unquote_plus

    detail = event.get("detail")
    if isinstance(detail, dict):
        return [(str(detail["bucket"]["name"]), str(detail["object"]["key"]))]
    return [(str(r["s3"]["bucket"]["name"]), unquote_plus(str(r["s3"]["object"]["key"])))
            for r in event.get("Records", []) if "s3" in r]
