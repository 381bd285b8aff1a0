"""The browser tracker (functions/collect/static/cdp.js) against the collector over HTTP.

On Node, the script runs in a minimal browser-like context (Node's own fetch, Blob and crypto;
an in-memory localStorage and cookie jar), which lets the tests cut the network and close the
tab. In headless Chromium, a real page loads the script from the collector, cross-origin.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cdp.settings import Settings

from .collect_support import WRITE_KEY, stream_events

HERE = Path(__file__).resolve().parent
TRACKER = HERE.parents[1] / "functions" / "collect" / "static" / "cdp.js"
HARNESS = HERE / "test_collect_tracker_harness.js"
NODE = shutil.which("node")
CHROMIUM = next(
    (
        p
        for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"))
        if p
    ),
    None,
)


def run_harness(scenario: str, url: str) -> dict[str, Any]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(HARNESS), str(TRACKER), url, WRITE_KEY, scenario],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def tracked(settings: Settings) -> list[dict[str, Any]]:
    return [event for _, event in stream_events(settings)]


needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


@needs_node
def test_page_identify_and_track_arrive_with_one_anonymous_id(
    collector_url: str, stack_settings: Settings
) -> None:
    observed = run_harness("basic", collector_url)
    assert observed["drained"]
    events = tracked(stack_settings)
    assert [e["type"] for e in events] == ["page", "identify", "track"]
    assert {e["anonymousId"] for e in events} == {observed["anonymousId"]}
    assert f"cdp_aid={observed['anonymousId']}" in observed["cookie"]
    identify, track = events[1], events[2]
    assert (identify["userId"], identify["traits"]) == ("user-42", {"email": "ada@example.com"})
    assert (track["userId"], track["event"], track["properties"]) == ("user-42", "Clicked", {"n": 1})
    assert events[0]["context"]["page"]["path"] == "/p"
    assert all(
        e["context"]["library"]["name"] == "cdp.js" and e["sourceId"].startswith("src_") for e in events
    )


@needs_node
def test_calls_made_before_the_script_loaded_are_replayed(
    collector_url: str, stack_settings: Settings
) -> None:
    assert run_harness("snippet", collector_url)["drained"]
    assert [e.get("event") for e in tracked(stack_settings)] == ["Early"]


@needs_node
def test_a_failed_send_is_retried_until_it_arrives(collector_url: str, stack_settings: Settings) -> None:
    observed = run_harness("retry", collector_url)
    assert observed["stats"]["failedFetches"] == 2 and observed["drained"]
    assert [e.get("event") for e in tracked(stack_settings)] == ["Retried"]


@needs_node
def test_leaving_the_page_sends_the_queue_with_send_beacon(
    collector_url: str, stack_settings: Settings
) -> None:
    observed = run_harness("beacon", collector_url)
    assert observed["stats"]["beacons"] == 1 and observed["stats"]["fetches"] == 0
    assert sorted(e["properties"]["n"] for e in tracked(stack_settings)) == [1, 2]


@needs_node
def test_events_kept_while_offline_are_sent_on_the_next_page(
    collector_url: str, stack_settings: Settings
) -> None:
    observed = run_harness("persist", collector_url)
    assert observed["drained"]
    [event] = tracked(stack_settings)
    assert (event["event"], event["anonymousId"]) == ("Offline", observed["anonymousId"])


PAGE = """<!doctype html>
<html><head><title>Shop</title></head><body>
<script>
  window.cdp = window.cdp || [];
  ["load", "page", "track", "identify", "reset", "flush"].forEach(function (m) {
    window.cdp[m] = window.cdp[m] || function () { window.cdp.push([m].concat([].slice.call(arguments))); };
  });
  cdp.load("%(key)s");
  cdp.page();
  cdp.identify("user-chromium", {email: "c@example.com"});
  cdp.track("Browser Click", {n: 1});
</script>
<script async src="%(collector)s/v1/cdp.js"></script>
</body></html>
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package: chromium)")
def test_a_real_page_in_headless_chromium_tracks_through_the_collector(
    collector_url: str, stack_settings: Settings
) -> None:
    with tempfile.TemporaryDirectory() as site, tempfile.TemporaryDirectory() as profile:
        Path(site, "index.html").write_text(
            PAGE % {"key": WRITE_KEY, "collector": collector_url}, encoding="utf-8"
        )
        pages = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=site))
        threading.Thread(target=pages.serve_forever, daemon=True).start()
        try:
            page_url = f"http://127.0.0.1:{pages.server_address[1]}/index.html"
            browser = [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                page_url,
            ]
            subprocess.run(browser, capture_output=True, timeout=120, check=False)
            deadline = time.monotonic() + 15
            events = tracked(stack_settings)
            while len(events) < 3 and time.monotonic() < deadline:
                time.sleep(0.2)
                events = tracked(stack_settings)
        finally:
            pages.shutdown()
            pages.server_close()
    assert sorted(e["type"] for e in events) == ["identify", "page", "track"]
    assert len({e["anonymousId"] for e in events}) == 1
    assert all(e["context"]["userAgent"] and e["context"]["library"]["name"] == "cdp.js" for e in events)
