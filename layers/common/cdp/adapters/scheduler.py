"""EventBridge Scheduler one-time schedules: a triggered campaign's wait longer than SQS's 15 minutes.

Each schedule puts its message on the activation queue at ``at(...)`` (UTC, second precision, no
flexible window) as the role ``TriggerSchedulerRole``, and is deleted once it has fired
(``ActionAfterCompletion: DELETE``); one that cannot deliver for 24 hours goes to the activation
dead-letter queue (its alarm fires) instead of being dropped. Names are deterministic: creating one that exists is a redelivery
of the same wait, and is done.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.errors import StoreError


def at_expression(due: datetime) -> str:
    """``at(yyyy-mm-ddThh:mm:ss)`` in UTC, rounded up to the second (never early)."""
    if due.microsecond:
        due = due.replace(microsecond=0) + timedelta(seconds=1)
    return f"at({due.strftime('%Y-%m-%dT%H:%M:%S')})"


class OneTimeSchedules(AwsAdapter):
    service = "scheduler"

    def __call__(self, name: str, body: dict[str, Any], due: datetime) -> None:
        s = self.settings
        try:
            with aws_errors("cannot schedule a campaign trigger", schedule=name):
                self.client.create_schedule(
                    Name=name, GroupName=s.trigger_schedule_group, ScheduleExpression=at_expression(due),
                    ScheduleExpressionTimezone="UTC", FlexibleTimeWindow={"Mode": "OFF"},
                    ActionAfterCompletion="DELETE",
                    Target={"Arn": s.activation_queue_arn, "RoleArn": s.trigger_scheduler_role_arn,
                            "Input": json.dumps(body), "RetryPolicy": {"MaximumEventAgeInSeconds": 86400},
                            "DeadLetterConfig": {"Arn": s.activation_dead_letter_arn}})
        except StoreError as exc:
            if exc.details.get("code") != "ConflictException":  # already scheduled by an earlier attempt
                raise
