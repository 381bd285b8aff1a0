"""Segment membership in DynamoDB (MembershipTable: HASH ``segment``, RANGE ``profile_id``).

Items:

* a member: ``segment=<name>``, ``profile_id``, ``entered_run``, ``entered_at``;
* a completed run: ``segment=#run:<name>``, ``profile_id=<run id>``, ``at``, ``report`` (JSON);
* the latest completed run of a segment: ``segment=#last-run``, ``profile_id=<name>``, same fields.

Segment names never start with ``#`` (the definition's validation forbids it), so run records never
mix with members.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cdp.errors import StoreError
from cdp.segments.membership import Member

_RUN_PREFIX = "#run:"
_LAST_RUN = "#last-run"


class DynamoMembershipStore:
    """MembershipStore over the MembershipTable; writes go through BatchWriteItem (25 per call)."""

    def __init__(self, table_name: str, *, dynamodb: Any = None) -> None:
        self.table_name = table_name
        self._dynamodb = dynamodb
        self._table: Any = None

    @property
    def table(self) -> Any:
        if self._table is None:
            if self._dynamodb is None:
                import boto3

                self._dynamodb = boto3.resource("dynamodb")
            self._table = self._dynamodb.Table(self.table_name)
        return self._table

    def members(self, segment: str) -> dict[str, Member]:
        result: dict[str, Member] = {}
        for item in self._query(segment):
            pid = str(item["profile_id"])
            result[pid] = Member(
                profile_id=pid,
                entered_run=str(item.get("entered_run", "")),
                entered_at=str(item.get("entered_at", "")),
            )
        return result

    def member(self, segment: str, profile_id: str) -> Member | None:
        try:
            item = self.table.get_item(
                Key={"segment": segment, "profile_id": profile_id}, ConsistentRead=True
            ).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(
                f"could not read the membership of segment {segment!r}", segment=segment
            ) from exc
        if not item:
            return None
        return Member(profile_id, str(item.get("entered_run", "")), str(item.get("entered_at", "")))

    def members_of(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Member]:
        """The stored memberships among ``(segment, profile_id)`` keys, in BatchGetItem calls of 100."""
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], Member] = {}
        _ = self.table  # binds the service resource
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {self.table_name: {
                "Keys": [{"segment": s, "profile_id": p} for s, p in wanted[start:start + 100]],
                "ConsistentRead": True}}
            while request:
                try:
                    out = self._dynamodb.batch_get_item(RequestItems=request)
                except (ClientError, BotoCoreError) as exc:
                    raise StoreError("could not read segment memberships") from exc
                for item in out.get("Responses", {}).get(self.table_name, []):
                    key = (str(item["segment"]), str(item["profile_id"]))
                    found[key] = Member(key[1], str(item.get("entered_run", "")), str(item.get("entered_at", "")))
                request = out.get("UnprocessedKeys") or {}
        return found

    def apply(self, segment: str, entered: Iterable[Member], exited: Iterable[str]) -> None:
        try:
            with self.table.batch_writer(overwrite_by_pkeys=["segment", "profile_id"]) as batch:
                for member in entered:
                    batch.put_item(
                        Item={
                            "segment": segment,
                            "profile_id": member.profile_id,
                            "entered_run": member.entered_run,
                            "entered_at": member.entered_at,
                        }
                    )
                for profile_id in exited:
                    batch.delete_item(Key={"segment": segment, "profile_id": profile_id})
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(
                f"could not write the membership of segment {segment!r}", segment=segment
            ) from exc

    def completed_run(self, segment: str, run_id: str) -> dict[str, Any] | None:
        return self._get_report(_RUN_PREFIX + segment, run_id)

    def last_run(self, segment: str) -> dict[str, Any] | None:
        return self._get_report(_LAST_RUN, segment)

    def record_run(self, segment: str, run_id: str, report: dict[str, Any]) -> None:
        body = json.dumps(report, sort_keys=True, default=str)
        at = str(report.get("at", ""))
        try:
            with self.table.batch_writer() as batch:
                batch.put_item(
                    Item={"segment": _RUN_PREFIX + segment, "profile_id": run_id, "at": at, "report": body}
                )
                batch.put_item(Item={"segment": _LAST_RUN, "profile_id": segment, "at": at, "report": body})
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(
                f"could not record run {run_id!r} of segment {segment!r}", segment=segment
            ) from exc

    def _get_report(self, key: str, sort: str) -> dict[str, Any] | None:
        try:
            item = self.table.get_item(Key={"segment": key, "profile_id": sort}, ConsistentRead=True).get(
                "Item"
            )
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"could not read run record {key}/{sort}") from exc
        if not item:
            return None
        report: dict[str, Any] = json.loads(str(item["report"]))
        return report

    def _query(self, segment: str) -> Iterable[dict[str, Any]]:
        from boto3.dynamodb.conditions import Key

        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("segment").eq(segment),
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self.table.query(**kwargs)
                yield from page.get("Items", [])
                if "LastEvaluatedKey" not in page:
                    return
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(
                f"could not read the membership of segment {segment!r}", segment=segment
            ) from exc
