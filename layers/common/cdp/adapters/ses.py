"""Email through SES (moto's SES locally: sent mail is kept, not delivered)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import ClientError

from cdp.errors import StoreError
from cdp.settings import Settings


class SesEmailSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def client(self) -> Any:
        return boto3.client("ses", region_name=self.settings.aws_region)

    def send(self, *, to: str, subject: str, text: str, html_body: str, tags: Mapping[str, str]) -> str:
        try:
            out = self.client.send_email(
                Source=self.settings.email_sender,
                Destination={"ToAddresses": [to]},
                Message={"Subject": {"Data": subject, "Charset": "UTF-8"},
                         "Body": {"Text": {"Data": text, "Charset": "UTF-8"},
                                  "Html": {"Data": html_body, "Charset": "UTF-8"}}},
                Tags=[{"Name": k, "Value": _tag(v)} for k, v in tags.items()])
        except ClientError as exc:
            raise StoreError("SES refused the email", code=exc.response["Error"]["Code"]) from exc
        return str(out["MessageId"])


def _tag(value: str) -> str:
    # SES tag values allow only ASCII letters, digits, underscore and dash.
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in value)[:256] or "none"
