"""The customer view shown: one self-contained HTML page, or plain text for a terminal.

The page makes no request of its own (inline CSS, no scripts, no images, no fonts) and every value
is escaped: traits and event properties come from tracked browsers and are hostile until shown
otherwise. ``PAGE_HEADERS`` add a Content-Security-Policy that forbids any request anyway.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

#: The page loads nothing and runs nothing; the header adds that it may not be framed (a policy
#: in a meta element cannot say so).
_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
#: ... and the signed link is not sent on to anyone.
PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": f"{_POLICY}; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:16px 24px}
header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#c6cbd6}
main{padding:8px 24px 32px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;margin:16px 0;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:4px 8px;border-bottom:1px solid #eef0f4}
th{color:#5b6477;font-weight:600;white-space:nowrap}
code,pre{font:12px/1.4 ui-monospace,monospace}pre{margin:0;white-space:pre-wrap;word-break:break-all}
.empty{color:#8a93a6}.note{color:#5b6477;font-size:12px}
"""


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]}


def _safe(value: Any) -> str:
    """Text for a terminal: control characters (escape sequences, carriage returns) made visible."""
    return _text(value).translate(_CONTROL)


def _cell(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return f"<pre>{escape(json.dumps(value, indent=1, sort_keys=True, default=str))}</pre>"
    return escape(_text(value))


def _pairs(title: str, values: Mapping[str, Any]) -> str:
    if not values:
        return _section(title, '<p class="empty">None.</p>')
    rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{_cell(v)}</td></tr>" for k, v in sorted(values.items()))
    return _section(title, f"<table>{rows}</table>")


def _table(title: str, columns: list[str], rows: Iterable[Mapping[str, Any]], *, note: str = "") -> str:
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    extra = f'<p class="note">{escape(note)}</p>' if note else ""
    if not body:
        return _section(title, '<p class="empty">None.</p>' + extra)
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    return _section(title, f"<table><tr>{head}</tr>{body}</table>{extra}")


def _section(title: str, content: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{content}</section>"


def _event_rows(events: Iterable[Mapping[str, Any]]) -> Iterable[dict[str, Any]]:
    for event in events:
        yield {
            "time": event.get("timestamp"),
            "type": event.get("type"),
            "event": event.get("event") or event.get("name"),
            "ids": {k: event[k] for k in ("userId", "anonymousId") if event.get(k)},
            "details": {k: event[k] for k in ("properties", "traits") if event.get(k)},
            "messageId": event.get("messageId"),
        }


def _events_note(view: Mapping[str, Any]) -> str:
    days = view.get("events_days_read") or {}
    shown = len(view.get("events") or [])
    note = f"The latest {shown} of {view.get('events_matched', shown)} found"
    if days.get("from"):
        note += f" in the lake's days {days['from']} to {days['to']}"
    if view.get("events_more"):
        note += "; older events exist (raise limit, up to 500)"
    return note + "."


def render_page(view: Mapping[str, Any]) -> str:
    """The customer view as one HTML document."""
    identifiers = {kind: ", ".join(values) for kind, values in (view.get("identifiers") or {}).items()}
    summary = {k: view.get(k) for k in ("lifecycle_stage", "first_seen", "last_seen", "event_count")}
    consent = [{"purpose": p, **held} for p, held in (view.get("consent") or {}).items()]
    sections = [
        _pairs("Summary", summary),
        _pairs("Identifiers", identifiers),
        _pairs("Traits", view.get("traits") or {}),
        _pairs("Computed traits", view.get("computed_traits") or {}),
        _table("Consent", ["purpose", "granted", "at", "message_id"], consent),
        _table("Consent statements in these events", ["at", "purpose", "granted", "message_id"],
               view.get("consent_history") or []),
        _table("Lifecycle history", ["at", "stage"], view.get("lifecycle_history") or []),
        _table("Segments", ["segment", "entered_at", "entered_run", "profile_id"], view.get("segments") or []),
        _table("Messages sent", ["sent_at", "channel", "segment", "run", "profile_id"], view.get("messages") or []),
        _table("Merges", ["at", "rule", "identifiers", "other_profile_ids", "message_id"], view.get("merges") or []),
        _table("Events", ["time", "type", "event", "ids", "details", "messageId"],
               _event_rows(view.get("events") or []), note=_events_note(view)),
    ]
    profile_id = escape(_text(view.get("profile_id")))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{escape(_POLICY)}\">"
        "<meta name=\"referrer\" content=\"no-referrer\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Customer {profile_id}</title><style>{_CSS}</style></head><body>"
        f"<header><h1 id=\"profile-id\">{profile_id}</h1>"
        f"<p>Looked up by {escape(_text(view.get('identifier')))}</p></header>"
        f"<main>{''.join(sections)}</main></body></html>\n"
    )


def render_text(view: Mapping[str, Any]) -> str:
    """The customer view as plain text, one section after another (for ``cdp profile timeline``)."""
    lines = [f"Profile {_safe(view.get('profile_id'))}  (looked up by {_safe(view.get('identifier'))})", ""]

    def pairs(title: str, values: Mapping[str, Any]) -> None:
        lines.append(f"== {title}")
        lines.extend(f"  {_safe(k)}: {_safe(v)}" for k, v in sorted(values.items()))
        lines.extend(["  (none)", ""] if not values else [""])

    def rows(title: str, items: Iterable[Mapping[str, Any]], columns: list[str]) -> None:
        lines.append(f"== {title}")
        items = list(items)
        lines.extend("  " + "  ".join(_safe(item.get(c)) for c in columns) for item in items)
        lines.extend(["  (none)", ""] if not items else [""])

    pairs("Summary", {k: view.get(k) for k in ("lifecycle_stage", "first_seen", "last_seen", "event_count")})
    pairs("Identifiers", {k: ", ".join(v) for k, v in (view.get("identifiers") or {}).items()})
    pairs("Traits", view.get("traits") or {})
    pairs("Computed traits", view.get("computed_traits") or {})
    rows("Consent", [{"purpose": p, **h} for p, h in (view.get("consent") or {}).items()],
         ["purpose", "granted", "at"])
    rows("Consent statements in these events", view.get("consent_history") or [], ["at", "purpose", "granted"])
    rows("Lifecycle history", view.get("lifecycle_history") or [], ["at", "stage"])
    rows("Segments", view.get("segments") or [], ["segment", "entered_at", "profile_id"])
    rows("Messages sent", view.get("messages") or [], ["sent_at", "channel", "segment", "run"])
    rows("Merges", view.get("merges") or [], ["at", "rule", "other_profile_ids"])
    rows("Events", _event_rows(view.get("events") or []), ["time", "type", "event", "messageId"])
    lines.append(_safe(_events_note(view)))
    return "\n".join(lines) + "\n"
