"""The MIME message of a campaign email: text and HTML alternatives, and the unsubscribe headers.

SES v2's ``Content.Simple`` cannot set ``List-Unsubscribe``; the message is sent raw
(``Content.Raw``) so the headers RFC 8058 asks for are exactly ours.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from cdp.campaigns.render import Rendered


def build_message(*, sender: str, to: str, rendered: Rendered, unsubscribe_url: str, campaign: str,
                  mailto: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1] or None)
    unsubscribe = f"<{unsubscribe_url}>" + (f", <mailto:{mailto}?subject=unsubscribe>" if mailto else "")
    message["List-Unsubscribe"] = unsubscribe
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-CDP-Campaign"] = campaign
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    return message.as_bytes()
