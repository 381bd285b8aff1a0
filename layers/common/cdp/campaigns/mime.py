"""The MIME message of a campaign email: text and HTML alternatives, and the unsubscribe headers.

SES v2's ``Content.Simple`` cannot set ``List-Unsubscribe``; the message is sent raw
(``Content.Raw``) so the headers RFC 8058 asks for are exactly ours.

Lines may be 998 characters (RFC 5322): with the library's default of 78, a long URL with no
folding point would be RFC 2047-encoded, which mailbox providers do not read as a link.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid

from cdp.campaigns.render import Rendered

_POLICY = SMTP.clone(max_line_length=998)


def build_message(*, sender: str, to: str, rendered: Rendered, unsubscribe_url: str, campaign: str | None = None,
                  mailto: str | None = None, headers: Mapping[str, str] | None = None) -> bytes:
    """The raw message; ``X-CDP-Campaign`` names the campaign (a per-segment email has ``X-CDP-Segment``)."""
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1] or None)
    unsubscribe = f"<{unsubscribe_url}>" + (f", <mailto:{mailto}?subject=unsubscribe>" if mailto else "")
    message["List-Unsubscribe"] = unsubscribe
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if campaign:
        message["X-CDP-Campaign"] = campaign
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return message.as_bytes()
