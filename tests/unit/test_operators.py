"""Operators of the admin routes: token shape, hashing, scopes, break-glass, the cache (cdp.operators)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cdp.collect.http import error_response
from cdp.collect.profiles import AdminAccess, audit_record, profile_response
from cdp.errors import Forbidden, InvalidOperator, StoreError, Unauthorized
from cdp.operators import (
    BREAK_GLASS,
    ROUTE_SCOPES,
    SCOPES,
    CachedDirectory,
    Operator,
    authorize,
    check_scopes,
    new_operator,
    operator_id_of,
    token_sha256,
)

BREAK_GLASS_TOKEN = "break-glass-token-0123456789abcdef"
CREATED = "2026-11-30T12:00:00.000Z"


class Directory:
    """The operators' table as a dict; counts the lookups."""

    def __init__(self, *operators: Operator) -> None:
        self.operators = {o.operator_id: o for o in operators}
        self.lookups: list[str] = []

    def get_operator(self, operator_id: str) -> Operator | None:
        self.lookups.append(operator_id)
        return self.operators.get(operator_id)


def _operator(*scopes: str) -> tuple[Operator, str]:
    return new_operator("alice", scopes, created_at=CREATED)


def _never() -> str:
    raise AssertionError("read the break-glass secret for an operator token")


def test_a_new_token_names_its_operator_and_only_its_hash_is_kept() -> None:
    operator, token = _operator("profiles:read")

    assert operator_id_of(token) == operator.operator_id and operator.operator_id.startswith("op_")
    assert operator.token_sha256 == token_sha256(token) and token not in json.dumps(dataclasses.asdict(operator),
                                                                                     default=sorted)
    assert len(token.removeprefix(f"cdp_{operator.operator_id}_")) == 43  # 256 random bits, url-safe base64


def test_two_new_operators_never_share_an_id_or_a_token() -> None:
    made = [_operator("profiles:read") for _ in range(50)]
    assert len({o.operator_id for o, _ in made}) == 50 and len({t for _, t in made}) == 50


@pytest.mark.parametrize(("scopes", "reason"), [([], "no_scope"), (["profiles:write"], "unknown_scope"),
                                                ([" "], "no_scope")])
def test_an_operator_needs_known_scopes(scopes: list[str], reason: str) -> None:
    with pytest.raises(InvalidOperator, match=reason):
        check_scopes(scopes)


@pytest.mark.parametrize("name", ["", " alice", "a" * 65, "alice\n", "<script>"])
def test_an_operator_name_is_a_plain_short_word(name: str) -> None:
    with pytest.raises(InvalidOperator, match="invalid_name"):
        new_operator(name, ["profiles:read"], created_at=CREATED)


def test_every_route_checks_a_known_scope() -> None:
    assert set(ROUTE_SCOPES.values()) <= set(SCOPES)


def test_an_operator_with_the_scope_is_the_caller_without_reading_the_break_glass_secret() -> None:
    operator, token = _operator("profiles:read", "privacy:read")
    directory = Directory(operator)

    caller = authorize(f"Bearer {token}", "profiles:read", directory=directory, break_glass=_never)

    assert (caller.operator_id, caller.scope) == (operator.operator_id, "profiles:read")
    assert directory.lookups == [operator.operator_id]


def test_an_operator_without_the_scope_is_forbidden_and_named() -> None:
    operator, token = _operator("profiles:read")

    with pytest.raises(Forbidden) as refused:
        authorize(f"Bearer {token}", "privacy:write", directory=Directory(operator), break_glass=_never)

    assert error_response(refused.value).status == 403
    assert refused.value.details == {"scope": "privacy:write", "operator": operator.operator_id}


def test_an_unknown_revoked_or_altered_operator_token_is_401() -> None:
    operator, token = _operator("profiles:read")
    revoked = dataclasses.replace(operator, revoked_at=CREATED)
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")

    for directory, presented in [(Directory(), token), (Directory(revoked), token), (Directory(operator), altered)]:
        with pytest.raises(Unauthorized) as refused:
            authorize(f"Bearer {presented}", "profiles:read", directory=directory, break_glass=_never)
        assert error_response(refused.value).status == 401


def test_a_leaked_hash_is_not_a_token() -> None:
    operator, _ = _operator("profiles:read")
    with pytest.raises(Unauthorized):
        authorize(f"Bearer {operator.token_sha256}", "profiles:read", directory=Directory(operator),
                  break_glass=BREAK_GLASS_TOKEN)


def test_the_break_glass_token_has_every_scope_and_is_named_so() -> None:
    for scope in SCOPES:
        caller = authorize(f"Bearer {BREAK_GLASS_TOKEN}", scope, directory=Directory(), break_glass=BREAK_GLASS_TOKEN)
        assert (caller.operator_id, caller.scope) == (BREAK_GLASS, scope)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", f"Basic {BREAK_GLASS_TOKEN}"])
def test_anything_else_is_401(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        authorize(header, "profiles:read", directory=Directory(), break_glass=BREAK_GLASS_TOKEN)


def test_an_empty_break_glass_secret_lets_nobody_in() -> None:
    with pytest.raises(Unauthorized):
        authorize("Bearer x", "profiles:read", directory=None, break_glass="")


def test_a_revocation_is_seen_once_the_cache_time_is_over() -> None:
    operator, token = _operator("profiles:read")
    directory, now = Directory(operator), [0.0]
    cached = CachedDirectory(directory, ttl_seconds=60, clock=lambda: now[0])
    authorize(f"Bearer {token}", "profiles:read", directory=cached, break_glass=_never)

    directory.operators[operator.operator_id] = dataclasses.replace(operator, revoked_at=CREATED)
    now[0] = 59.0
    authorize(f"Bearer {token}", "profiles:read", directory=cached, break_glass=_never)  # still cached
    now[0] = 60.0
    with pytest.raises(Unauthorized):
        authorize(f"Bearer {token}", "profiles:read", directory=cached, break_glass=_never)
    assert len(directory.lookups) == 2


def test_unknown_ids_are_cached_too_and_the_cache_is_bounded() -> None:
    directory = Directory()
    cached = CachedDirectory(directory, ttl_seconds=60, clock=lambda: 0.0, max_entries=3)
    for _ in range(3):
        assert cached.get_operator("op_000000000000") is None
    assert directory.lookups == ["op_000000000000"]
    for n in range(10):
        cached.get_operator(f"op_{n:012x}")
    assert len(cached._entries) <= 3


def test_an_unreadable_directory_is_503_not_a_way_in() -> None:
    class Down:
        def get_operator(self, operator_id: str) -> Operator | None:
            raise StoreError("operators_unavailable")

    _, token = _operator("profiles:read")
    response, caller = profile_response("u1", authorization=f"Bearer {token}", access=AdminAccess(Down(), _never),
                                        lookup=lambda _: {"profile_id": "p1"})
    assert (response.status, response.body["reason"], caller) == (503, "operators_unavailable", None)


def test_the_audit_line_of_a_read_names_the_operator_and_scope_never_the_token_or_identifier() -> None:
    operator, token = _operator("profiles:read")
    response, caller = profile_response("email%3Aa%40example.com", authorization=f"Bearer {token}",
                                        access=AdminAccess(Directory(operator), _never),
                                        lookup=lambda _: {"profile_id": "p1", "traits": {"email": "a@example.com"}})
    line = json.dumps(audit_record("profile", "email%3Aa%40example.com", response, caller="198.51.100.7",
                                   operator=caller))

    record = json.loads(line)
    assert (record["operator"], record["scope"], record["status"]) == (operator.operator_id, "profiles:read", 200)
    assert token not in line and operator.token_sha256 not in line and "a@example.com" not in line


def test_the_audit_line_of_a_forbidden_read_names_who_tried() -> None:
    operator, token = _operator("privacy:read")
    response, caller = profile_response("user_id%3A1", authorization=f"Bearer {token}",
                                        access=AdminAccess(Directory(operator), _never),
                                        lookup=lambda _: pytest.fail("looked up without the scope"))
    record = audit_record("profile", "user_id%3A1", response, caller=None, operator=caller)
    assert (record["status"], record["operator"], record["scope"]) == (403, operator.operator_id, "profiles:read")
