"""Segment membership in DynamoDB (MembershipTable: HASH ``segment``, RANGE ``profile_id``).

Items:

* a member: ``segment=<name>``, ``profile_id``, ``entered_run``, ``entered_at``, ``announced``
  (BOOL: False while its entry waits to be published; absent on items written before it = True);
* a completed run: ``segment=#run:<name>``, ``profile_id=<run id>``, ``at``, ``report`` (JSON);
* the latest completed run of a segment: ``segment=#last-run``, ``profile_id=<name>``, same fields;
* the latest tick of a scheduled campaign: ``segment=#campaign-tick``, ``profile_id=<campaign>``, same
  fields (:mod:`cdp.campaigns.scheduled`).

Segment names never start with ``#`` (the definition's validation forbids it), so run records never
mix with members. Items are written in the low-level client's form directly (``{"S": ...}``,
``{"BOOL": ...}`` for ``announced``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.errors import ServiceThrottled
from cdp.segments.membership import Member
from cdp.settings import Settings

_RUN_PREFIX = "#run:"
_LAST_RUN = "#last-run"
_CAMPAIGN_TICK = "#campaign-tick"
#: BatchWriteItem takes 25 requests, BatchGetItem 100 keys.
WRITE_BATCH = 25
READ_BATCH = 100
#: Rounds of resending what DynamoDB left unprocessed (throttled) before giving up.
UNPROCESSED_ROUNDS = 8


class DynamoMembershipStore(AwsAdapter):
    """MembershipStore over the MembershipTable of ``settings``; writes go through BatchWriteItem."""

    service = "dynamodb"

    def __init__(
        self,
        settings: Settings,
        *,
        client: Any = None,
        base_delay: float = 0.05,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, client=client)
        self.table_name = settings.membership_table
        self._base_delay = base_delay
        self._sleep = sleep


    # --------------------------------------------------------------- members
    def members(self, segment: str) -> dict[str, Member]:
        result: dict[str, Member] = {}
        for item in self._query(segment):
            member = _member(item)
            result[member.profile_id] = member
        return result

    def member(self, segment: str, profile_id: str) -> Member | None:
        item = self._get(segment, profile_id, f"could not read the membership of segment {segment!r}")
        return _member(item) if item else None

    def members_page(self, segment: str, *, after: str | None, limit: int) -> tuple[list[Member], str | None]:
        """One Query of at most ``limit`` items from ``after`` (a scheduled campaign's fan-out page).

        DynamoDB names a LastEvaluatedKey whenever it stopped at ``limit``, even if nothing follows:
        then the next page is empty, and ends the chain."""
        kwargs: dict[str, Any] = {
            "TableName": self.table_name, "KeyConditionExpression": "#s = :s", "Limit": limit,
            "ExpressionAttributeNames": {"#s": "segment"}, "ExpressionAttributeValues": {":s": {"S": segment}},
            "ConsistentRead": True}
        if after is not None:
            kwargs["ExclusiveStartKey"] = _key(segment, after)
        with aws_errors(f"could not read the membership of segment {segment!r}", table=self.table_name,
                        segment=segment):
            page = self.client.query(**kwargs)
        last = page.get("LastEvaluatedKey")
        return [_member(item) for item in page.get("Items", [])], (last["profile_id"]["S"] if last else None)

    def members_of(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Member]:
        """The stored memberships among ``(segment, profile_id)`` keys, in BatchGetItem calls of 100."""
        wanted = sorted(set(keys))
        found: dict[tuple[str, str], Member] = {}
        for start in range(0, len(wanted), READ_BATCH):
            request: dict[str, Any] = {self.table_name: {
                "Keys": [_key(s, p) for s, p in wanted[start:start + READ_BATCH]],
                "ConsistentRead": True}}
            for round_ in range(UNPROCESSED_ROUNDS + 1):
                if round_:
                    self._backoff(round_)
                with aws_errors("could not read segment memberships", table=self.table_name):
                    out = self.client.batch_get_item(RequestItems=request)
                for item in out.get("Responses", {}).get(self.table_name, []):
                    found[(item["segment"]["S"], item["profile_id"]["S"])] = _member(item)
                request = out.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise ServiceThrottled("could not read segment memberships", table=self.table_name)
        return found

    def apply(self, segment: str, entered: Iterable[Member], exited: Iterable[str]) -> None:
        # One request per key: BatchWriteItem refuses a batch naming a key twice, and an exit
        # listed after an entry of the same profile wins (as it would written one by one).
        requests: dict[str, dict[str, Any]] = {}
        for member in entered:
            requests[member.profile_id] = {"PutRequest": {"Item": {
                **_key(segment, member.profile_id),
                "entered_run": {"S": member.entered_run},
                "entered_at": {"S": member.entered_at},
                "announced": {"BOOL": member.announced},
            }}}
        for profile_id in exited:
            requests[profile_id] = {"DeleteRequest": {"Key": _key(segment, profile_id)}}
        self._write(list(requests.values()), f"could not write the membership of segment {segment!r}",
                    segment=segment)

    # --------------------------------------------------------------- runs
    def completed_run(self, segment: str, run_id: str) -> dict[str, Any] | None:
        return self._get_report(_RUN_PREFIX + segment, run_id)

    def last_run(self, segment: str) -> dict[str, Any] | None:
        return self._get_report(_LAST_RUN, segment)

    def record_run(self, segment: str, run_id: str, report: dict[str, Any]) -> None:
        fields = {"at": {"S": str(report.get("at", ""))},
                  "report": {"S": json.dumps(report, sort_keys=True, default=str)}}
        self._write(
            [{"PutRequest": {"Item": {**_key(_RUN_PREFIX + segment, run_id), **fields}}},
             {"PutRequest": {"Item": {**_key(_LAST_RUN, segment), **fields}}}],
            f"could not record run {run_id!r} of segment {segment!r}", segment=segment)

    def last_campaign_tick(self, campaign: str) -> dict[str, Any] | None:
        return self._get_report(_CAMPAIGN_TICK, campaign)

    def record_campaign_tick(self, campaign: str, report: dict[str, Any]) -> None:
        fields = {"at": {"S": str(report.get("at", ""))},
                  "report": {"S": json.dumps(report, sort_keys=True, default=str)}}
        self._write([{"PutRequest": {"Item": {**_key(_CAMPAIGN_TICK, campaign), **fields}}}],
                    f"could not record the tick of campaign {campaign!r}", campaign=campaign)

    def _get_report(self, key: str, sort: str) -> dict[str, Any] | None:
        item = self._get(key, sort, f"could not read run record {key}/{sort}")
        if not item:
            return None
        report: dict[str, Any] = json.loads(item["report"]["S"])
        return report

    # --------------------------------------------------------------- calls
    def _get(self, segment: str, profile_id: str, reason: str) -> dict[str, Any] | None:
        with aws_errors(reason, table=self.table_name):
            item: dict[str, Any] | None = self.client.get_item(
                TableName=self.table_name, Key=_key(segment, profile_id), ConsistentRead=True
            ).get("Item")
        return item

    def _write(self, requests: list[dict[str, Any]], reason: str, **details: Any) -> None:
        for start in range(0, len(requests), WRITE_BATCH):
            pending: dict[str, Any] = {self.table_name: requests[start:start + WRITE_BATCH]}
            for round_ in range(UNPROCESSED_ROUNDS + 1):
                if round_:
                    self._backoff(round_)
                with aws_errors(reason, table=self.table_name, **details):
                    out = self.client.batch_write_item(RequestItems=pending)
                pending = out.get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise ServiceThrottled(reason, table=self.table_name, **details)

    def _query(self, segment: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "segment"},
            "ExpressionAttributeValues": {":s": {"S": segment}},
            "ConsistentRead": True,
        }
        while True:
            with aws_errors(f"could not read the membership of segment {segment!r}",
                            table=self.table_name, segment=segment):
                page = self.client.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _backoff(self, round_: int) -> None:
        self._sleep(min(self._base_delay * 2 ** (round_ - 1), 2.0))


def _key(segment: str, profile_id: str) -> dict[str, Any]:
    return {"segment": {"S": segment}, "profile_id": {"S": profile_id}}


def _member(item: dict[str, Any]) -> Member:
    return Member(
        profile_id=item["profile_id"]["S"],
        entered_run=item.get("entered_run", {}).get("S", ""),
        entered_at=item.get("entered_at", {}).get("S", ""),
        announced=bool(item.get("announced", {}).get("BOOL", True)),
    )
