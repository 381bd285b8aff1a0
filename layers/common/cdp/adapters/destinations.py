"""The destinations' AWS side: their queue, their dead-letter store, their on/off state and secrets.

* ``SqsDeliveryQueue`` puts deliveries back on the destinations queue with a delay (re-tries);
* ``SqsDeadLetters`` keeps deliveries that gave up (the destinations dead-letter queue, 14 days) and
  hands them back for ``cdp webhooks replay``;
* ``DynamoDestinationState``: item ``destination#<name>`` of the idempotency table, ``disabled`` =
  the reason (a 410 from a webhook endpoint); ``cdp webhooks enable NAME`` removes it;
* ``SecretTargets`` builds each destination's client from its secret, ``<prefix><secret>``: for the
  ad platforms a JSON ``{"access_token": ...}``; for a webhook its ``whsec_...`` signing secret.
  ``base_url`` in an ad platform's secret (a local fake) is honoured only when running locally.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from cdp.activation.audiences import AudiencePlatform
from cdp.activation.audiences.google import GoogleAudience
from cdp.activation.audiences.meta import MetaAudience
from cdp.activation.destinations import Delivery, Destination
from cdp.activation.webhooks import Webhook, secret_key
from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.adapters.http import Urllib3Transport, check_url
from cdp.adapters.secrets import CachedSecret
from cdp.errors import InvalidConfig, StoreError
from cdp.settings import Settings

BATCH_SIZE = 10


def _send_batch(client: Any, queue_url: str, items: Sequence[tuple[Delivery, int]]) -> None:
    for start in range(0, len(items), BATCH_SIZE):
        chunk = items[start:start + BATCH_SIZE]
        with aws_errors("cannot queue deliveries"):
            out = client.send_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "MessageBody": json.dumps(d.to_dict()), "DelaySeconds": max(0, min(900, delay))}
                for i, (d, delay) in enumerate(chunk)])
        if out.get("Failed"):
            raise StoreError("some deliveries were not queued", failed=out["Failed"])


class SqsDeliveryQueue(AwsAdapter):
    service = "sqs"

    def send(self, items: Sequence[tuple[Delivery, int]]) -> None:
        _send_batch(self.client, self.settings.destination_queue_url, items)


class SqsDeadLetters(AwsAdapter):
    service = "sqs"

    def put(self, items: Sequence[Delivery]) -> None:
        _send_batch(self.client, self.settings.destination_dead_letter_url, [(d, 0) for d in items])

    def drain(self, *, limit: int = 10_000) -> Iterator[tuple[Delivery, str]]:
        """``(delivery, receipt handle)`` of the kept deliveries, up to ``limit`` (hidden 5 minutes each)."""
        seen = 0
        while seen < limit:
            with aws_errors("cannot read dead letters"):
                out = self.client.receive_message(QueueUrl=self.settings.destination_dead_letter_url,
                                                  MaxNumberOfMessages=10, VisibilityTimeout=300, WaitTimeSeconds=0)
            messages = out.get("Messages") or []
            if not messages:
                return
            for message in messages:
                seen += 1
                yield Delivery.from_dict(json.loads(message["Body"])), message["ReceiptHandle"]

    def delete(self, receipt: str) -> None:
        with aws_errors("cannot delete a dead letter"):
            self.client.delete_message(QueueUrl=self.settings.destination_dead_letter_url, ReceiptHandle=receipt)


class DynamoDestinationState(AwsAdapter):
    service = "dynamodb"

    def _key(self, name: str) -> dict[str, Any]:
        return {"id": {"S": f"destination#{name}"}}

    def disabled(self, name: str) -> str | None:
        with aws_errors("cannot read destination state", destination=name):
            item = self.client.get_item(TableName=self.settings.idempotency_table, Key=self._key(name),
                                        ConsistentRead=True).get("Item") or {}
        return item.get("disabled", {}).get("S")

    def disable(self, name: str, reason: str) -> None:
        with aws_errors("cannot disable destination", destination=name):
            self.client.put_item(TableName=self.settings.idempotency_table,
                                 Item={**self._key(name), "disabled": {"S": reason}})

    def enable(self, name: str) -> None:
        with aws_errors("cannot enable destination", destination=name):
            self.client.delete_item(TableName=self.settings.idempotency_table, Key=self._key(name))


class SecretTargets:
    """Destination clients from their secrets (read through a 5-minute cache per warm Lambda)."""

    def __init__(self, settings: Settings, transport: Any | None = None) -> None:
        self.settings = settings
        self.local = bool(settings.allow_local_endpoints)
        self.transport = transport or Urllib3Transport()
        self._secrets: dict[str, CachedSecret] = {}

    def secret(self, name: str) -> str:
        if not self.settings.destination_secret_prefix:
            raise InvalidConfig("DESTINATION_SECRET_PREFIX is not set")
        cached = self._secrets.get(name)
        if cached is None:
            cached = self._secrets[name] = CachedSecret(self.settings, self.settings.destination_secret_prefix + name)
        return cached.value()

    def _credentials(self, destination: Destination) -> dict[str, str]:
        try:
            data = json.loads(self.secret(destination.secret))
        except ValueError as exc:
            raise InvalidConfig("an ad platform's secret must be JSON with an access_token",
                                destination=destination.name) from exc
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise InvalidConfig("an ad platform's secret must be JSON with an access_token",
                                destination=destination.name)
        return data

    def _base_url(self, credentials: dict[str, str], default: str) -> str:
        base = credentials.get("base_url")
        if base and self.local:
            check_url(base, allow_local=True)
            return base
        return default

    def audience(self, destination: Destination) -> AudiencePlatform:
        credentials = self._credentials(destination)
        if destination.type == "meta_audience":
            return MetaAudience(destination.options["audience_id"], credentials["access_token"], self.transport,
                                base_url=self._base_url(credentials, "https://graph.facebook.com"))
        return GoogleAudience(destination.options["account_id"].replace("-", ""),
                              destination.options["user_list_id"], credentials["access_token"], self.transport,
                              account_type=destination.options.get("account_type", "GOOGLE_ADS"),
                              base_url=self._base_url(credentials, "https://datamanager.googleapis.com"))

    def webhook(self, destination: Destination) -> Webhook:
        url = destination.options["url"]
        secret = self.secret(destination.secret)
        if secret.startswith("{"):
            # JSON form: {"secret": "whsec_...", "url": ...}; the URL override is for local runs only.
            try:
                data = json.loads(secret)
                secret = str(data["secret"])
            except (ValueError, KeyError, TypeError) as exc:
                raise InvalidConfig("a webhook secret is whsec_... or JSON with a secret",
                                    destination=destination.name) from exc
            if self.local and isinstance(data.get("url"), str):
                url = data["url"]
        check_url(url, allow_local=self.local)
        secret_key(secret)  # a malformed secret is refused before anything is posted
        return Webhook(destination.name, url, secret)


def webhook_transport(settings: Settings) -> Urllib3Transport:
    """The transport for webhook endpoints: every host checked and pinned (SSRF)."""
    return Urllib3Transport(pin_public=True, allow_local=bool(settings.allow_local_endpoints))
