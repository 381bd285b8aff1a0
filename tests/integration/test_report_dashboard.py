"""The dashboard in headless Chromium: it renders offline, every chart draws, its numbers are the tables'."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from datetime import timedelta
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from cdp.adapters.duckdb import DuckDBEngine
from cdp.jobs.report_job import compute_report, quarantine_counts, write_report
from cdp.reports import ReportRange
from tests.unit.test_reports import JOURNEY, NOW, build_lake

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome",
                                                 "chrome-headless-shell")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package: chromium)")


class _Dom(HTMLParser):
    """Charts (figure data-chart) with the number of SVG shapes each holds, and data-value marks."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, int] = {}
        self.values: list[dict[str, Any]] = []
        self._chart: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "figure" and a.get("data-chart"):
            self._chart = str(a["data-chart"])
            self.charts[self._chart] = 0
        elif self._chart and tag in ("rect", "path", "polyline", "circle", "text"):
            self.charts[self._chart] += 1
        if "data-value" in a or "data-events" in a:
            self.values.append({**a, "chart": self._chart, "tag": tag})

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure":
            self._chart = None


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory):
    root = str(tmp_path_factory.mktemp("lake"))
    build_lake(root)
    fs = pafs.LocalFileSystem()
    report = compute_report(engine=DuckDBEngine(fs, root), window=ReportRange((NOW - timedelta(days=160)).date(),
                                                                             NOW.date(), "week"),
                            journey=JOURNEY, now=NOW, run_id="r1", quarantine=lambda w: quarantine_counts(fs, root, w))
    return report, Path(write_report(report, fs, root))


def _open(page: Path) -> tuple[str, str, list[str]]:
    """(DOM after load, browser log, paths the page requested) of ``page`` served over HTTP."""
    requested: list[str] = []

    class Logged(SimpleHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:
            requested.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Logged, directory=str(page.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as profile:
            done = subprocess.run(
                [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-first-run", "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
                 "--virtual-time-budget=5000", "--dump-dom",
                 f"http://127.0.0.1:{server.server_address[1]}/{page.name}"],
                capture_output=True, text=True, timeout=120, check=False)
    finally:
        server.shutdown()
        server.server_close()
    return done.stdout, done.stderr, requested


def test_the_dashboard_renders_offline_with_every_chart_drawn_and_the_tables_numbers(dashboard) -> None:
    report, page = dashboard
    dom_text, log, requested = _open(page)
    # Nothing but the page itself was fetched (the browser may ask for a favicon), nothing was blocked
    # or logged to the console.
    assert requested and all(p.split("?")[0] in (f"/{page.name}", "/favicon.ico") for p in requested)
    assert not re.search(r"CONSOLE|Content Security Policy|Refused to", log)
    dom = _Dom()
    dom.feed(dom_text)
    expected_charts = {"funnel", "stages_over_time", "transitions", "time_in_stage", "churn", "journey", "cohorts",
                       "segments", "events_daily", "quarantine", "campaigns"}
    assert set(dom.charts) == expected_charts
    assert all(shapes > 0 for shapes in dom.charts.values()), dom.charts
    header = next(v for v in dom.values if "data-events" in v)
    assert int(header["data-events"]) == report.meta["events"] > 0
    funnel_bars = {v["data-label"]: int(v["data-value"]) for v in dom.values
                   if v["chart"] == "funnel" and v["tag"] == "text"}
    assert funnel_bars == {r["stage"]: r["people"] for r in report.tables["funnel"] if r["stage"] != "(none)"}
    flows = {(v["data-from"], v["data-to"]): int(v["data-value"]) for v in dom.values if v["chart"] == "transitions"}
    totals: dict[tuple[str, str], int] = {}
    for t in report.tables["transitions"]:
        totals[(t["from"], t["to"])] = totals.get((t["from"], t["to"]), 0) + t["people"]
    assert flows == totals
