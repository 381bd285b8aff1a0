"""Email through SES (moto's SES locally: sent mail is kept, not delivered)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cdp.adapters.aws import aws_client
from cdp.adapters.errors import aws_errors
from cdp.settings import Settings


class SesEmailSender:
    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        self.settings = settings
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client(self.settings, "ses")
        return self._client

    def send(self, *, to: str, subject: str, text: str, html_body: str, tags: Mapping[str, str]) -> str:
        """The SES message id. Raises StoreError (not retryable when SES refused the message)."""
        with aws_errors("SES refused the email"):
            out = self.client.send_email(
                Source=self.settings.email_sender,
                Destination={"ToAddresses": [to]},
                Message={"Subject": {"Data": subject, "Charset": "UTF-8"},
                         "Body": {"Text": {"Data": text, "Charset": "UTF-8"},
                                  "Html": {"Data": html_body, "Charset": "UTF-8"}}},
                Tags=[{"Name": k, "Value": _tag(v)} for k, v in tags.items()])
        return str(out["MessageId"])


def _tag(value: str) -> str:
    # SES tag values allow only ASCII letters, digits, underscore and dash.
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in value)[:256] or "none"
