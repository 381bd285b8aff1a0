"""The cdp command finds the stack it should talk to, or says it has none."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cdp_infra import cli


def test_unmerge_without_any_stack_says_so_and_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("PROFILES_TABLE", "LAKE_BUCKET"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["profile", "unmerge", "email:a@b.io"]) == 2
    assert "no stack" in capsys.readouterr().err


def test_a_running_dev_stack_is_found_through_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LAKE_BUCKET", raising=False)
    monkeypatch.delenv("PROFILES_TABLE", raising=False)
    cli.DEV_STACK_FILE.parent.mkdir()
    cli.DEV_STACK_FILE.write_text(json.dumps({"LAKE_BUCKET": "lake-x", "PROFILES_TABLE": "profiles-x"}))
    try:
        assert cli.use_dev_stack() is True
        assert os.environ["LAKE_BUCKET"] == "lake-x"
    finally:  # use_dev_stack writes os.environ itself: leave nothing behind for other tests
        os.environ.pop("LAKE_BUCKET", None)
        os.environ.pop("PROFILES_TABLE", None)


def test_an_explicit_stack_environment_wins_over_the_dev_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKE_BUCKET", "mine")
    cli.DEV_STACK_FILE.parent.mkdir()
    cli.DEV_STACK_FILE.write_text(json.dumps({"LAKE_BUCKET": "theirs"}))
    assert cli.use_dev_stack() is False


def test_profile_view_prints_a_link_signed_for_that_person_and_refuses_long_lives(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import time
    from urllib.parse import parse_qs, urlsplit

    from cdp.profiles.links import verify_view_link

    monkeypatch.delenv("CDP_ADMIN_TOKEN", raising=False)
    assert cli.main(["profile", "view", "email:a+b@x.io", "--token", "t0k", "--url", "https://api.example/v1api",
                     "--minutes", "5"]) == 0
    link = urlsplit(capsys.readouterr().out.strip())
    assert link.path == "/v1api/v1/profiles/email:a+b@x.io/view"
    query = {k: v[0] for k, v in parse_qs(link.query).items()}
    verify_view_link("email:a+b@x.io", query["expires"], query["signature"], "t0k", now=time.time())
    assert cli.main(["profile", "view", "user_id:1", "--token", "t0k", "--minutes", "100000"]) == 2
