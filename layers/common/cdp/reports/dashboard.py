"""The dashboard: one self-contained HTML page (inline CSS, server-rendered SVG, no script, no
network), rendered from a run's meta and tables.

Every chart is a ``<figure data-chart="name">`` holding one non-empty ``<svg>``; an empty table
gives a labelled empty chart. Numbers shown carry ``data-value`` so tests can compare them with
the tables.
"""

from __future__ import annotations

from collections import defaultdict
from html import escape
from typing import Any

Row = dict[str, Any]
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
W = 720

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#222}
header{background:#1f2d3d;color:#fff;padding:16px 24px}header h1{margin:0 0 4px;font-size:20px}
header p{margin:0;opacity:.85}main{display:grid;grid-template-columns:repeat(auto-fit,minmax(760px,1fr));
gap:16px;padding:16px}section{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 3px #0002}
h2{font-size:16px;margin:4px 0 8px}figure{margin:0}figcaption{color:#555;font-size:12px;margin-top:4px}
svg{display:block;max-width:100%;height:auto}svg text{font-size:11px;fill:#333}
table{border-collapse:collapse;font-size:12px;margin-top:8px}td,th{padding:2px 8px;text-align:right;
border-bottom:1px solid #eee}td:first-child,th:first-child{text-align:left}.error{color:#b00020;
font-family:monospace;white-space:pre-wrap}.empty{fill:#888;font-style:italic}
"""


def _svg(height: int, body: str, label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
            f'role="img" aria-label="{escape(label)}">{body}</svg>')


def _empty(label: str, why: str = "No data in this range") -> str:
    return _svg(60, f'<rect x="0" y="0" width="{W}" height="60" fill="#fafafa" stroke="#ddd"/>'
                    f'<text class="empty" x="{W // 2}" y="34" text-anchor="middle">{escape(why)}</text>', label)


def _figure(name: str, svg: str, caption: str) -> str:
    return f'<figure data-chart="{name}">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def _num(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else escape(str(value))


def _table(name: str, rows: list[Row], columns: list[str], limit: int = 40) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td data-col="{c}" data-value="{escape(str(r.get(c)))}">{_num(r.get(c))}</td>'
                         for c in columns) + "</tr>"
        for r in rows[:limit])
    more = f"<caption>first {limit} of {len(rows)} rows</caption>" if len(rows) > limit else ""
    return f'<table data-table="{name}">{more}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# ---------------------------------------------------------------- charts


def bars(name: str, rows: list[Row], label_key: str, value_key: str, caption: str) -> str:
    """Horizontal bars, one per row (a funnel when rows are stages)."""
    if not rows or not any(r.get(value_key) for r in rows):
        return _figure(name, _empty(caption), caption)
    top = max(float(r.get(value_key) or 0) for r in rows) or 1.0
    bar_h, left = 22, 170
    parts = []
    for i, r in enumerate(rows):
        value = float(r.get(value_key) or 0)
        width = (W - left - 80) * value / top
        y = 6 + i * (bar_h + 6)
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{escape(str(r[label_key]))}</text>'
                     f'<rect x="{left}" y="{y}" width="{width:.1f}" height="{bar_h}" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(str(r[label_key]))}: {_num(r.get(value_key))}'
                     f'</title></rect><text x="{left + width + 6:.1f}" y="{y + 15}" data-label="{escape(str(r[label_key]))}"'
                     f' data-value="{r.get(value_key)}">{_num(r.get(value_key))}</text>')
    return _figure(name, _svg(12 + len(rows) * (bar_h + 6), "".join(parts), caption), caption)


def lines(name: str, series: dict[str, list[tuple[str, float]]], caption: str, *, height: int = 240) -> str:
    """One line per series over shared x labels (periods or days)."""
    xs = sorted({x for points in series.values() for x, _ in points})
    values = [v for points in series.values() for _, v in points]
    if not xs or not any(values):
        return _figure(name, _empty(caption), caption)
    top = float(max(values)) or 1.0
    left, right, bottom, top_pad = 50, 150, 30, 10
    span = max(1, len(xs) - 1)

    def x_of(x: str) -> float:
        return left + (W - left - right) * xs.index(x) / span

    def y_of(v: float) -> float:
        return top_pad + (height - top_pad - bottom) * (1 - v / top)

    parts = [f'<line x1="{left}" y1="{height - bottom}" x2="{W - right}" y2="{height - bottom}" stroke="#999"/>',
             f'<text x="{left - 6}" y="{top_pad + 8}" text-anchor="end">{_num(int(top) if top.is_integer() else top)}'
             f'</text><text x="{left - 6}" y="{height - bottom}" text-anchor="end">0</text>']
    step = max(1, len(xs) // 6)
    for i, x in enumerate(xs):
        if i % step == 0 or (i == len(xs) - 1 and i % step > step / 2):
            parts.append(f'<text x="{x_of(x):.1f}" y="{height - 12}" text-anchor="middle">{escape(x)}</text>')
    for i, (label, points) in enumerate(sorted(series.items())):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{x_of(x):.1f},{y_of(v):.1f}" for x, v in sorted(points))
        if len(points) == 1:
            (x, v), = points
            parts.append(f'<circle cx="{x_of(x):.1f}" cy="{y_of(v):.1f}" r="3" fill="{color}"/>')
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}">'
                     f'<title>{escape(label)}</title></polyline>')
        parts.append(f'<rect x="{W - right + 10}" y="{top_pad + i * 16}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{W - right + 24}" y="{top_pad + 9 + i * 16}">{escape(label)}</text>')
    return _figure(name, _svg(height, "".join(parts), caption), caption)


def sankey(name: str, flows: list[Row], caption: str) -> str:
    """Stage transitions as a two-column flow: sources on the left, targets on the right, bands
    as wide as the number of people who moved."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    for f in flows:
        totals[(f["from"], f["to"])] += int(f["people"])
    if not totals:
        return _figure(name, _empty(caption, "No stage changes in this range"), caption)
    sources = sorted({s for s, _ in totals}, key=lambda s: -sum(n for (a, _), n in totals.items() if a == s))
    targets = sorted({t for _, t in totals}, key=lambda t: -sum(n for (_, b), n in totals.items() if b == t))
    total = sum(totals.values())
    height, gap, node_w, left, right = 320, 6, 14, 150, W - 190
    usable_l = height - gap * (len(sources) + 1)
    usable_r = height - gap * (len(targets) + 1)
    scale = min(usable_l, usable_r) / total

    def stack(names: list[str], side: int) -> dict[str, float]:
        y, at = float(gap), {}
        for n in names:
            at[n] = y
            y += sum(v for k, v in totals.items() if k[side] == n) * scale + gap
        return at

    y_src, y_dst = stack(sources, 0), stack(targets, 1)
    off_src, off_dst = dict(y_src), dict(y_dst)
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sources)}
    parts = []
    for (s, t), n in sorted(totals.items(), key=lambda kv: (sources.index(kv[0][0]), targets.index(kv[0][1]))):
        h = n * scale
        y0, y1 = off_src[s], off_dst[t]
        off_src[s] += h
        off_dst[t] += h
        x0, x1, mid = left + node_w, right, (left + node_w + right) / 2
        parts.append(f'<path d="M{x0},{y0:.1f} C{mid},{y0:.1f} {mid},{y1:.1f} {x1},{y1:.1f} L{x1},{y1 + h:.1f} '
                     f'C{mid},{y1 + h:.1f} {mid},{y0 + h:.1f} {x0},{y0 + h:.1f} Z" fill="{colors[s]}" '
                     f'fill-opacity="0.45" data-from="{escape(s)}" data-to="{escape(t)}" data-value="{n}">'
                     f'<title>{escape(s)} → {escape(t)}: {n:,}</title></path>')
    for names, at, x, anchor, dx in ((sources, y_src, left, "end", -6), (targets, y_dst, right, "start", node_w + 6)):
        side = 0 if names is sources else 1
        for node in names:
            people = sum(v for k, v in totals.items() if k[side] == node)
            h = people * scale
            parts.append(f'<rect x="{x}" y="{at[node]:.1f}" width="{node_w}" height="{max(h, 1):.1f}" '
                         f'fill="#1f2d3d"/><text x="{x + dx}" y="{at[node] + h / 2 + 4:.1f}" '
                         f'text-anchor="{anchor}">{escape(node)} ({people:,})</text>')
    return _figure(name, _svg(height, "".join(parts), caption), caption)


def heatmap(name: str, cells: list[Row], caption: str) -> str:
    """Cohort retention: one row per first-seen week, one column per week since, shade = retention."""
    if not cells:
        return _figure(name, _empty(caption, "No cohorts first seen in this range"), caption)
    cohorts = sorted({c["cohort"] for c in cells})
    weeks = max(int(c["week"]) for c in cells) + 1
    cell_w = min(48, (W - 150) / max(weeks, 1))
    cell_h, left, top = 20, 150, 20
    by = {(c["cohort"], int(c["week"])): c for c in cells}
    sizes = {c["cohort"]: c["size"] for c in cells}
    parts = [f'<text x="{left + i * cell_w + cell_w / 2:.1f}" y="14" text-anchor="middle">{i}</text>'
             for i in range(weeks)]
    for r, cohort in enumerate(cohorts):
        y = top + r * cell_h
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(cohort)} ({sizes[cohort]:,})</text>')
        for w in range(weeks):
            cell = by.get((cohort, w))
            share = float(cell["retention"]) if cell else 0.0
            shade = f"rgba(78,121,167,{0.08 + 0.92 * share:.3f})" if cell else "#f3f3f3"
            title = f"{cohort} week {w}: {cell['people']:,} of {sizes[cohort]:,}" if cell else "no activity"
            parts.append(f'<rect x="{left + w * cell_w:.1f}" y="{y}" width="{cell_w - 1:.1f}" height="{cell_h - 1}" '
                         f'fill="{shade}"><title>{escape(title)}</title></rect>')
            if cell and cell_w >= 30:
                parts.append(f'<text x="{left + w * cell_w + cell_w / 2:.1f}" y="{y + 14}" text-anchor="middle" '
                             f'data-cohort="{cohort}" data-week="{w}" data-value="{share}">{share:.0%}</text>')
    height = top + len(cohorts) * cell_h + 6
    return _figure(name, _svg(height, "".join(parts), caption), caption)


# ---------------------------------------------------------------- page


def _series(rows: list[Row], key: str, x: str, value: str) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for r in rows:
        out[str(r[key])].append((str(r[x]), float(r[value] or 0)))
    return dict(out)


def render_dashboard(meta: Row, tables: dict[str, list[Row]]) -> str:
    t = {k: tables.get(k, []) for k in ("funnel", "stages_over_time", "transitions", "time_in_stage", "churn",
                                         "journey", "journey_rules", "cohorts", "events_daily",
                                         "events_by_source", "quarantine", "segments", "campaigns")}
    health = meta.get("health") or {}
    sections = []
    funnel_rows = [r for r in t["funnel"] if r["people"] or r["stage"] != "(none)"]
    sections.append(("Lifecycle funnel (now)", bars("funnel", funnel_rows, "stage", "people",
                                                    "People per lifecycle stage, from the profiles snapshot")
                     + _table("funnel", t["funnel"], ["stage", "people", "known"])))
    sections.append(("Lifecycle stages over time", lines(
        "stages_over_time", _series(t["stages_over_time"], "stage", "period", "people"),
        f"People per stage at the end of each {meta.get('granularity', 'period')}")))
    sections.append(("Stage transitions", sankey("transitions", t["transitions"],
                                                 "Stage changes in the range (from → to), people")
                     + _table("transitions", t["transitions"], ["period", "from", "to", "people"])))
    sections.append(("Time in stage", bars("time_in_stage", t["time_in_stage"], "stage", "median_days",
                                           "Median days in a stage before the next change (completed stays)")
                     + _table("time_in_stage", t["time_in_stage"],
                              ["stage", "completed_stays", "median_days", "ongoing_stays", "median_days_so_far"])))
    churn_series = {"churned": [(r["period"], r["churned"]) for r in t["churn"]],
                    "returned": [(r["period"], r["returned"]) for r in t["churn"]]}
    sections.append(("Churn", lines("churn", churn_series, "Profiles that churned, and churned profiles that "
                                                           "came back, per period")
                     + _table("churn", t["churn"], ["period", "churned", "returned"])))
    if meta.get("journey_error"):
        journey_html = (f'<p class="error" data-journey-error>{escape(str(meta["journey_error"]))}</p>'
                        + _figure("journey", _empty("journey", "Journey map invalid: see the error above"), "journey"))
    else:
        unseen = [r["rule"] for r in t["journey_rules"] if not r["events"]]
        note = (f'<p data-unseen>Not seen in this range: {escape(", ".join(unseen))}</p>' if unseen else "")
        journey_html = (bars("journey", t["journey"], "stage", "reached",
                             "People who reached at least each stage (config/journey.yaml)")
                        + _table("journey", t["journey"], ["stage", "reached", "deepest", "known", "conversion"])
                        + note)
    sections.append(("Customer journey (5A)", journey_html))
    sections.append(("Cohort retention", heatmap("cohorts", t["cohorts"],
                                                 "Share of each first-seen week's people active N weeks later")))
    sections.append(("Segments", lines("segments", _series(t["segments"], "segment", "period", "members"),
                                       "Members after each period's last run")
                     + _table("segments", t["segments"], ["segment", "period", "members", "entered", "exited"])))
    sections.append(("Campaigns", bars("campaigns", t["campaigns"], "campaign", "sent",
                                       "Emails sent per campaign since the range began (outcomes from SES)")
                     + _table("campaigns", t["campaigns"], ["campaign", "sent", "delivered", "bounced", "complained",
                                                            "opened", "clicked", "unsubscribed", "conversions",
                                                            "conversion_event"])))
    per_day: dict[str, float] = defaultdict(float)
    for r in t["events_daily"]:
        per_day[r["day"]] += r["events"]
    sections.append(("Data health", lines("events_daily", _series(
        [r for r in t["events_daily"] if r["events"]] or [], "type", "day", "events"),
        "Events per day by type (days without events show as gaps in the table)")
        + _table("events_by_source", t["events_by_source"], ["source", "events"])
        + bars("quarantine", _sum_by(t["quarantine"], "reason", "entries"), "reason", "entries",
               "Quarantined entries by reason")
        + _table("health", [health], ["events", "minutes_since_last_event", "avg_delay_seconds",
                                      "days_without_events"])))
    body = "".join(f'<section><h2>{escape(title)}</h2>{html}</section>' for title, html in sections)
    title = f"CDP report {meta.get('from')} → {meta.get('to')}"
    header = (f"<header><h1>{escape(title)}</h1><p>By {escape(str(meta.get('granularity')))} · computed "
              f"<time data-computed>{escape(str(meta.get('computed_at')))}</time> from "
              f'<span data-events="{meta.get("events", 0)}">{_num(meta.get("events", 0))}</span> events and '
              f"{_num(meta.get('profiles', 0))} profiles · {_num(meta.get('bytes_scanned', 0))} bytes scanned "
              f"· run {escape(str(meta.get('run_id')))}</p></header>")
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
            "img-src data:\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{header}<main>{body}</main></body></html>")


def _sum_by(rows: list[Row], key: str, value: str) -> list[Row]:
    totals: dict[str, int] = defaultdict(int)
    for r in rows:
        totals[str(r[key])] += int(r[value])
    return [{key: k, value: v} for k, v in sorted(totals.items())]
