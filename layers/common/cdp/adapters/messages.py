"""The journal of sent messages in the idempotency table (see :mod:`cdp.profiles.messages`).

One item per profile, ``id=sent#<profile_id>``, attribute ``messages``: a map from the effect
ledger's key to ``{channel, segment, run, sent_at, entered_at}``. No ``expires_at``: it lives as long
as the profile (an erasure deletes it with the profile's other data). A few hundred bytes per email:
an item holds some thousands, far more than segment entries send one person.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.errors import ServiceThrottled
from cdp.profiles.messages import SentMessage, journal_key, message_from_item, sort_messages
from cdp.settings import Settings

READ_BATCH = 100
UNPROCESSED_ROUNDS = 8


class DynamoMessageJournal(AwsAdapter):
    service = "dynamodb"

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        super().__init__(settings, client=client)
        self.table = settings.idempotency_table

    def record(self, message: SentMessage) -> None:
        key = {"id": {"S": journal_key(message.profile_id)}}
        entry = {"M": {name: {"S": value} for name, value in message.to_dict().items()
                       if name not in ("profile_id", "key")}}
        with aws_errors("could not record a sent message", key=message.key):
            # Two idempotent updates: a map must exist before a key of it can be set, and one
            # expression may not both create it and set a path inside it.
            self.client.update_item(TableName=self.table, Key=key,
                                    UpdateExpression="SET #m = if_not_exists(#m, :empty)",
                                    ExpressionAttributeNames={"#m": "messages"},
                                    ExpressionAttributeValues={":empty": {"M": {}}})
            self.client.update_item(TableName=self.table, Key=key, UpdateExpression="SET #m.#k = :v",
                                    ExpressionAttributeNames={"#m": "messages", "#k": message.key},
                                    ExpressionAttributeValues={":v": entry})

    def sent_to(self, profile_ids: Collection[str]) -> list[SentMessage]:
        wanted = sorted(set(profile_ids))
        found: list[SentMessage] = []
        for start in range(0, len(wanted), READ_BATCH):
            request: dict[str, Any] = {self.table: {
                "Keys": [{"id": {"S": journal_key(p)}} for p in wanted[start:start + READ_BATCH]],
                "ProjectionExpression": "id, messages"}}
            for _ in range(UNPROCESSED_ROUNDS + 1):
                with aws_errors("could not read sent messages", table=self.table):
                    out = self.client.batch_get_item(RequestItems=request)
                for item in out.get("Responses", {}).get(self.table, []):
                    profile_id = item["id"]["S"].split("#", 1)[1]
                    for key, entry in item.get("messages", {}).get("M", {}).items():
                        plain = {k: v.get("S", "") for k, v in entry.get("M", {}).items()}
                        found.append(message_from_item(profile_id, key, plain))
                request = out.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise ServiceThrottled("could not read sent messages", table=self.table)
        return sort_messages(found)
