"""The demo's progress: live on a terminal, silent otherwise."""

from __future__ import annotations

import io

from cdp_infra.demo import Progress, Rate


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_when_its_stream_is_not_a_terminal() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress("a phase")
    progress.live("sending 1/2")
    progress.done()
    assert out.getvalue() == "" and not progress.enabled


def test_a_live_line_is_redrawn_in_place_and_ended_by_the_next_phase_line() -> None:
    out = Terminal()
    progress = Progress(out)
    progress.live("sending 1/2")
    progress.live("sending 2/2")
    progress("sent")
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("sent\n") and "sending 2/2\n[" in text


def test_the_eta_is_what_remains_at_the_current_rate_and_unknown_without_one() -> None:
    assert Rate.eta(300, 100.0) == "3s"
    assert Rate.eta(60_000, 100.0) == "10min"
    assert Rate.eta(5, 0.0) == "?"
    assert Rate.eta(0, 0.0) == "0s"
