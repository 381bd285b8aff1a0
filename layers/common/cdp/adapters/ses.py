"""Email through SES (moto's SES locally: sent mail is kept, not delivered)."""

from __future__ import annotations

from collections.abc import Mapping

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors


class SesEmailSender(AwsAdapter):
    service = "ses"

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
