"""Operators on the stack of template.yaml (moto): the table, the collector's and the customer view's
scope checks, the audit line, revocation, and `cdp operators` against the stack."""

from __future__ import annotations

import json
import logging
from types import ModuleType
from typing import Any

import boto3
import pytest

from cdp.adapters.operators import DynamoOperatorStore
from cdp.errors import InvalidOperator, NotFound
from cdp.operators import token_sha256
from cdp.settings import Settings

from .collect_support import ADMIN_TOKEN, proxy_event, response_json


@pytest.fixture
def operators(stack_settings: Settings) -> DynamoOperatorStore:
    return DynamoOperatorStore(stack_settings)


@pytest.fixture
def fresh_collector(collector: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The collector with an operator cache of 0 s, so a revocation is seen at the next request."""
    monkeypatch.setenv("OPERATOR_CACHE_SECONDS", "0")
    collector.settings.cache_clear()
    collector.admin_access.cache_clear()
    return collector


def _profile(token: str | None, identifier: str = "email:alice@example.com") -> dict[str, Any]:
    return proxy_event(f"/v1/profiles/{identifier}", method="GET",
                       headers={"Authorization": f"Bearer {token}"} if token else None,
                       resource="/v1/profiles/{identifier}", path_parameters={"identifier": identifier})


def _privacy_status(token: str) -> dict[str, Any]:
    return proxy_event("/v1/privacy/requests/pr_0", method="GET", headers={"Authorization": f"Bearer {token}"},
                       resource="/v1/privacy/requests/{request_id}", path_parameters={"request_id": "pr_0"})


def test_the_table_keeps_the_tokens_hash_and_scopes_never_the_token(
        operators: DynamoOperatorStore, stack_settings: Settings) -> None:
    operator, token = operators.add("alice", ["profiles:read", "privacy:read"])

    items = boto3.client("dynamodb").scan(TableName=stack_settings.operators_table)["Items"]
    assert token not in json.dumps(items) and token[-43:] not in json.dumps(items)
    assert items[0]["token_sha256"]["S"] == token_sha256(token)
    assert operators.get_operator(operator.operator_id) == operator


def test_revoking_keeps_the_record_and_its_first_time(operators: DynamoOperatorStore) -> None:
    operator, _ = operators.add("bob", ["privacy:write"])
    first = operators.revoke(operator.operator_id)
    again = operators.revoke(operator.operator_id)

    assert first.revoked_at and again.revoked_at == first.revoked_at
    assert [(o.name, o.active) for o in operators.list_operators()] == [("bob", False)]
    with pytest.raises(NotFound):
        operators.revoke("op_000000000000")
    with pytest.raises(InvalidOperator):
        operators.add("carol", ["everything"])


def test_an_operator_reads_a_profile_with_its_scope_and_the_audit_line_names_it(
        fresh_collector: ModuleType, operators: DynamoOperatorStore, caplog: pytest.LogCaptureFixture) -> None:
    operator, token = operators.add("support-1", ["profiles:read"])

    with caplog.at_level(logging.INFO, logger="cdp.audit"):
        response = fresh_collector.app(_profile(token), None)

    assert response["statusCode"] == 404  # authorised; the stack is empty
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cdp.audit"]
    assert [(x["operator"], x["route"], x["scope"], x["identifier_type"], x["status"]) for x in lines] == [
        (operator.operator_id, "profile", "profiles:read", "email", 404)]
    assert "alice" not in caplog.text and token not in caplog.text


def test_a_missing_scope_is_403_on_every_admin_route_of_the_collector(
        fresh_collector: ModuleType, operators: DynamoOperatorStore, caplog: pytest.LogCaptureFixture) -> None:
    reader, reader_token = operators.add("support-2", ["profiles:read"])
    _, privacy_token = operators.add("dpo", ["privacy:write"])

    with caplog.at_level(logging.INFO, logger="cdp.audit"):
        refused_status = fresh_collector.app(_privacy_status(reader_token), None)
        refused_profile = fresh_collector.app(_profile(privacy_token), None)
        refused_request = fresh_collector.app(proxy_event(
            "/v1/privacy/requests", body={"kind": "erase", "identifier": "email:a@example.com"},
            headers={"Authorization": f"Bearer {reader_token}", "Content-Type": "application/json"},
            resource="/v1/privacy/requests"), None)

    assert [r["statusCode"] for r in (refused_status, refused_profile, refused_request)] == [403, 403, 403]
    assert response_json(refused_status)["reason"] == "scope_required"
    assert response_json(refused_status)["scope"] == "privacy:read"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cdp.audit"]
    assert [(x["audit"], x["operator"], x["scope"], x["status"]) for x in lines][0] == (
        "privacy_status", reader.operator_id, "privacy:read", 403)


def test_a_revoked_operator_is_401_once_the_cache_time_is_over(
        fresh_collector: ModuleType, operators: DynamoOperatorStore) -> None:
    operator, token = operators.add("leaver", ["profiles:read"])
    assert fresh_collector.app(_profile(token), None)["statusCode"] == 404

    operators.revoke(operator.operator_id)

    assert fresh_collector.app(_profile(token), None)["statusCode"] == 401


def test_the_break_glass_token_still_opens_every_route_and_is_named_so(
        fresh_collector: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cdp.audit"):
        assert fresh_collector.app(_profile(ADMIN_TOKEN), None)["statusCode"] == 404
        assert fresh_collector.app(_privacy_status(ADMIN_TOKEN), None)["statusCode"] == 404
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "cdp.audit"]
    assert {x["operator"] for x in lines} == {"break-glass"}


def test_cdp_operators_adds_lists_and_revokes_on_the_stack(
        stack_environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        operators: DynamoOperatorStore) -> None:
    from cdp_infra import cli

    for name, value in stack_environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(cli, "use_dev_stack", lambda: False)

    assert cli.main(["operators", "add", "erin", "--scope", "profiles:read,privacy:read"]) == 0
    added = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    token, operator_id = added["token"].split()[0], added["operator id"].strip()
    assert operators.get_operator(operator_id).token_sha256 == token_sha256(token)  # type: ignore[union-attr]

    assert cli.main(["operators", "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed == [{"operatorId": operator_id, "name": "erin", "scopes": ["privacy:read", "profiles:read"],
                       "createdAt": listed[0]["createdAt"], "revokedAt": None}]
    assert token not in json.dumps(listed)

    assert cli.main(["operators", "revoke", operator_id]) == 0
    assert not operators.get_operator(operator_id).active  # type: ignore[union-attr]
    assert cli.main(["operators", "add", "frank", "--scope", "root"]) == 2
    assert cli.main(["operators", "revoke", "op_000000000000"]) == 1
