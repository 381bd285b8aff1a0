"""Completed segment runs, read from the MembershipTable's run records (``segment=#run:<name>``)."""

from __future__ import annotations

import json
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors

_RUN_PREFIX = "#run:"  # as cdp.adapters.membership writes them


class DynamoRunHistory(AwsAdapter):
    """RunHistory (cdp.jobs.report_job) over the MembershipTable: one Query per segment."""

    service = "dynamodb"

    def runs(self, segment: str) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.settings.membership_table,
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "segment"},
            "ExpressionAttributeValues": {":s": {"S": _RUN_PREFIX + segment}},
        }
        reports: list[dict[str, Any]] = []
        while True:
            with aws_errors(f"could not read the runs of segment {segment!r}",
                            table=self.settings.membership_table, segment=segment):
                page = self.client.query(**kwargs)
            reports.extend(json.loads(item["report"]["S"]) for item in page.get("Items", []) if "report" in item)
            if "LastEvaluatedKey" not in page:
                return sorted(reports, key=lambda r: str(r.get("at", "")))
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
