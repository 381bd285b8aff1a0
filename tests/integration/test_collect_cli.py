"""``cdp sources`` and ``cdp quarantine`` against the template's stack in moto."""

from __future__ import annotations

import json
import re

import pytest

from cdp.adapters.quarantine import S3Quarantine
from cdp.collect import QuarantineEntry
from cdp.settings import Settings
from cdp_infra.cli import main

from .collect_support import stream_events


@pytest.fixture
def stack_env(stack_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    return stack_environment


@pytest.mark.usefixtures("stack_env")
def test_sources_create_prints_a_key_that_then_lists_and_disables(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "create", "website"]) == 0
    created = capsys.readouterr().out
    source_id = re.search(r"source id: (\S+)", created).group(1)  # type: ignore[union-attr]
    write_key = re.search(r"write key: (\S+)", created).group(1)  # type: ignore[union-attr]
    assert main(["sources", "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed == [
        {"sourceId": source_id, "name": "website", "enabled": True, "createdAt": listed[0]["createdAt"]}
    ]
    assert write_key not in json.dumps(listed)
    assert main(["sources", "disable", source_id]) == 0
    assert f"disabled {source_id}" in capsys.readouterr().out
    main(["sources", "list", "--json"])
    assert json.loads(capsys.readouterr().out)["enabled"] is False


@pytest.mark.usefixtures("stack_env")
def test_disabling_an_unknown_source_fails() -> None:
    assert main(["sources", "disable", "src_missing"]) == 1


def test_the_cli_says_what_is_missing_without_the_stack_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCES_TABLE", raising=False)
    with pytest.raises(SystemExit, match="SOURCES_TABLE"):
        main(["sources", "list"])


@pytest.mark.usefixtures("stack_env")
def test_quarantine_list_then_replay_streams_what_passes(
    stack_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {"type": "track", "userId": "u1", "event": "E", "messageId": "m-good"}
    S3Quarantine(stack_settings).put(
        [
            QuarantineEntry(
                "rule_since_fixed", "src_1", "2024-05-01T12:00:00.000Z", "batch", index=0, payload=good
            ),
            QuarantineEntry("invalid_json", "src_1", "2024-05-01T12:00:00.000Z", "batch", raw_body=b"{x"),
        ]
    )
    assert main(["quarantine", "list", "--json"]) == 0
    assert [json.loads(line)["reason"] for line in capsys.readouterr().out.splitlines()] == [
        "rule_since_fixed",
        "invalid_json",
    ]
    assert main(["quarantine", "replay"]) == 0
    assert "replayed 1 events; 1 still rejected" in capsys.readouterr().out
    assert [e["messageId"] for _, e in stream_events(stack_settings)] == ["m-good"]
    main(["quarantine", "list"])
    assert "invalid_json" in capsys.readouterr().out
