"""Operators in the OperatorsTable (key ``operator_id``): name, scopes, the SHA-256 of the token.

The admin routes only get an item (their roles allow ``dynamodb:GetItem`` on this table and nothing
else on it); adding, listing and revoking are the CLI's, with the operator's own IAM credentials.
A revoked operator keeps its item (``revoked_at``), so an old audit line's id still has a name.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.errors import ConcurrentUpdate, NotFound, StoreError
from cdp.operators import Operator, new_operator
from cdp.times import format_time

_UNAVAILABLE = "operators_unavailable"


class DynamoOperatorStore(AwsAdapter):
    service = "dynamodb"

    @property
    def _table(self) -> str:
        return self.settings.operators_table

    def get_operator(self, operator_id: str) -> Operator | None:
        with aws_errors(_UNAVAILABLE):
            item = self.client.get_item(TableName=self._table, Key={"operator_id": {"S": operator_id}},
                                        ConsistentRead=True).get("Item")
        return _operator(item) if item else None

    def add(self, name: str, scopes: Iterable[str], *, now: datetime | None = None) -> tuple[Operator, str]:
        """A new operator and its token (shown once; only its hash is stored)."""
        operator, token = new_operator(name, scopes, created_at=format_time(now or datetime.now(UTC)))
        try:
            with aws_errors(_UNAVAILABLE):
                self.client.put_item(TableName=self._table, Item=_item(operator),
                                     ConditionExpression="attribute_not_exists(operator_id)")
        except ConcurrentUpdate:  # a 48-bit id collision: ask again
            raise StoreError("operator_id_collision") from None
        return operator, token

    def list_operators(self) -> list[Operator]:
        found: list[Operator] = []
        with aws_errors(_UNAVAILABLE):
            for page in self.client.get_paginator("scan").paginate(TableName=self._table):
                found.extend(_operator(item) for item in page.get("Items", []))
        return sorted(found, key=lambda o: (o.created_at, o.operator_id))

    def revoke(self, operator_id: str, *, now: datetime | None = None) -> Operator:
        """Mark ``operator_id`` revoked (the first revocation's time stays). Raises :class:`NotFound`."""
        try:
            with aws_errors(_UNAVAILABLE):
                item = self.client.update_item(
                    TableName=self._table, Key={"operator_id": {"S": operator_id}},
                    UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                    ConditionExpression="attribute_exists(operator_id)",
                    ExpressionAttributeValues={":now": {"S": format_time(now or datetime.now(UTC))}},
                    ReturnValues="ALL_NEW")["Attributes"]
        except ConcurrentUpdate:
            raise NotFound("unknown_operator", operator_id=operator_id) from None
        return _operator(item)


def _item(operator: Operator) -> dict[str, Any]:
    return {
        "operator_id": {"S": operator.operator_id},
        "name": {"S": operator.name},
        "scopes": {"SS": sorted(operator.scopes)},
        "token_sha256": {"S": operator.token_sha256},
        "created_at": {"S": operator.created_at},
    }


def _operator(item: dict[str, Any]) -> Operator:
    return Operator(
        operator_id=item["operator_id"]["S"],
        name=item.get("name", {}).get("S", ""),
        scopes=frozenset(item.get("scopes", {}).get("SS", [])),
        token_sha256=item.get("token_sha256", {}).get("S", ""),
        created_at=item.get("created_at", {}).get("S", ""),
        revoked_at=item.get("revoked_at", {}).get("S"),
    )
