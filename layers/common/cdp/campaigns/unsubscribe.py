"""One-click unsubscribe (RFC 8058): signed, expiring links, and the opt-out they record.

Every campaign email carries ``List-Unsubscribe: <https://…/v1/unsubscribe?…>`` and
``List-Unsubscribe-Post: List-Unsubscribe=One-Click``. The link names the profile, the campaign and
the consent purpose, expires after :data:`LINK_DAYS` days and is signed (HMAC-SHA256, as
:mod:`cdp.profiles.links`) with a key derived for this purpose from a secret of its own
(UnsubscribeLinkSecret): it cannot be forged nor replayed as a customer-view link, and rotating the
secret revokes every link.

The collector answers ``POST`` (the mailbox provider's one-click) and ``GET`` (a person who opened
the link: a small page whose one button POSTs, so mail scanners that fetch links unsubscribe nobody).
The POST writes one event into the stream::

    {"type": "track", "event": "Unsubscribed", "context": {"traits": {"email": …},
     "consent": {"categoryPreferences": {"email": false}}}, "receivedAt": …}

so unify applies it like any consent change (latest *received* statement per purpose wins), and
:func:`cdp.privacy.consent.may_contact` refuses every later email of that purpose, from every
campaign. The messageId is derived from the link: a second click is a duplicate in unify.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from cdp.errors import Unauthorized
from cdp.profiles import links

#: A link works this long after the send (mailbox providers may POST days after delivery).
LINK_DAYS = 60
_PURPOSE = b"cdp unsubscribe link v1"
UNSUBSCRIBED_EVENT = "Unsubscribed"
PATH = "/v1/unsubscribe"


@dataclass(frozen=True, slots=True)
class UnsubscribeLink:
    profile_id: str
    campaign: str
    purpose: str

    @property
    def identifier(self) -> str:
        return f"{self.profile_id}|{self.campaign}|{self.purpose}"

    def message_id(self) -> str:
        return "unsub-" + hashlib.sha256(self.identifier.encode()).hexdigest()[:32]


def unsubscribe_url(base_url: str, link: UnsubscribeLink, secret: str, *, now: float) -> str:
    expires = int(now) + LINK_DAYS * 86400
    signature = links.sign(link.identifier, expires, secret, purpose=_PURPOSE)
    query = urlencode({"p": link.profile_id, "c": link.campaign, "k": link.purpose, "e": expires, "s": signature})
    return f"{base_url.rstrip('/')}{PATH}?{query}"


def verify_link(params: dict[str, str], secret: str, *, now: float) -> UnsubscribeLink:
    """The link the query parameters carry; :class:`Unauthorized` if forged, altered or expired."""
    values = [params.get(k) or "" for k in ("p", "c", "k")]
    if not all(values) or any(len(v) > 200 for v in values):
        raise Unauthorized("link_invalid")
    link = UnsubscribeLink(*values)
    links.verify(link.identifier, params.get("e"), params.get("s"), secret, now=now, purpose=_PURPOSE,
                 max_seconds=LINK_DAYS * 86400)
    return link


def opt_out_event(link: UnsubscribeLink, email: str, *, method: str,
                  identity: dict[str, str] | None = None) -> dict[str, Any]:
    """The event that records the opt-out (the collector stamps receivedAt and validates it).

    ``identity`` is the profile's ``userId`` (or an ``anonymousId`` it already holds) when it has
    one; the email address rides in ``context.traits``, so unify finds the person by either.
    """
    return {
        **(identity or {}),
        "type": "track",
        "event": UNSUBSCRIBED_EVENT,
        "messageId": link.message_id(),
        "properties": {"campaign": link.campaign, "purpose": link.purpose, "method": method},
        "context": {"traits": {"email": email},
                    "consent": {"categoryPreferences": {link.purpose: False}}},
    }


CONFIRMATION_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribed</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto">
<h1>You are unsubscribed</h1>
<p>You will not receive these emails any more.</p>
</body></html>
"""

INVALID_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Link not valid</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto">
<h1>This link is not valid any more</h1>
<p>Use the unsubscribe link of a recent email.</p>
</body></html>
"""


def record_unsubscribe(params: dict[str, str], *, secret: str, profiles: Any, sink: Any, now: Any,
                       method: str) -> UnsubscribeLink:
    """Verify the link and put the opt-out event into the stream (received now). Returns the link.

    ``profiles`` reads profiles by id (an IdentityStore); a profile merged since the send is
    followed to the one that absorbed it. Raises :class:`Unauthorized` for a bad or expired link,
    :class:`cdp.errors.NotFound` when no live profile with a valid address remains.
    """
    from cdp.activation import validated_email
    from cdp.campaigns.stream import internal_record
    from cdp.errors import NotFound

    link = verify_link(params, secret, now=now.timestamp())
    profile_id: str | None = link.profile_id
    email = None
    identity: dict[str, str] | None = None
    for _ in range(5):  # merges chain rarely; a cycle must not loop
        profile = profiles.get_profiles([profile_id]).get(profile_id) if profile_id else None
        if profile is None:
            break
        if not profile.is_tombstone:
            view = profile.view()
            email = validated_email(view)
            ids = view.get("identifiers") or {}
            if ids.get("user_id"):
                identity = {"userId": str(ids["user_id"][0])}
            elif ids.get("anonymous_id"):
                identity = {"anonymousId": str(ids["anonymous_id"][0])}
            break
        profile_id = profile.merged_into
    if not email:
        raise NotFound("no_profile")
    record = internal_record(opt_out_event(link, email, method=method, identity=identity),
                             source_id="unsubscribe", now=now)
    sink.put([record])
    return link


def confirmation_form(action_query: str) -> str:
    """The page a GET shows: one button that POSTs (link scanners that GET unsubscribe nobody)."""
    import html

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 3em auto">
<h1>Unsubscribe</h1>
<form method="post" action="?{html.escape(action_query)}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe from these emails</button>
</form>
</body></html>
"""
