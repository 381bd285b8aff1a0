"""The destinations' AWS side: their queue, their dead-letter store, their on/off state and secrets.

* ``SqsDeliveryQueue`` puts deliveries back on the destinations queue with a delay (re-tries);
* ``SqsDeadLetters`` keeps deliveries that gave up (the destinations dead-letter queue, 14 days) and
  hands them back for ``cdp webhooks replay``;
* ``DynamoDestinationState``: item ``destination#<name>`` of the idempotency table, ``disabled`` =
  the reason (a 410 from a webhook endpoint); ``cdp webhooks enable NAME`` removes it;
* ``SecretTargets`` builds each destination's client from its secret, ``<prefix><secret>``: for the
  ad platforms a JSON ``{"access_token": ...}`` (Google: or ``{"client_id", "client_secret",
  "refresh_token"}``, exchanged for access tokens kept per warm Lambda); for a webhook its
  ``whsec_...`` signing secret. ``base_url`` / ``token_url`` in an ad platform's secret (a local
  fake) are honoured only when running locally;
* ``DynamoAudienceHoldings``: what each ad audience was sent, per person (``AudienceHoldingsTable``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from cdp.activation.audiences import AudiencePlatform
from cdp.activation.audiences.google import TOKEN_URL, GoogleAudience, GoogleOAuth
from cdp.activation.audiences.holdings import Holding
from cdp.activation.audiences.meta import MetaAudience
from cdp.activation.destinations import Delivery, Destination, Reconcile, parse_delivery
from cdp.activation.trigger_posts import TriggerPost
from cdp.activation.webhooks import Webhook, secret_key
from cdp.adapters.aws import AwsAdapter
from cdp.adapters.errors import aws_errors
from cdp.adapters.http import Urllib3Transport, check_url
from cdp.adapters.secrets import CachedSecret
from cdp.adapters.sqs import send_batches
from cdp.errors import ConcurrentUpdate, InvalidConfig, ServiceThrottled
from cdp.settings import Settings


def _send_batch(client: Any, queue_url: str, items: Sequence[tuple[Delivery | Reconcile | TriggerPost, int]]) -> None:
    send_batches(client, queue_url, [(d.to_dict(), max(0, min(900, delay))) for d, delay in items],
                 what="deliveries")


class SqsDeliveryQueue(AwsAdapter):
    service = "sqs"

    def send(self, items: Sequence[tuple[Delivery | Reconcile | TriggerPost, int]]) -> None:
        _send_batch(self.client, self.settings.destination_queue_url, items)


class SqsDeadLetters(AwsAdapter):
    service = "sqs"

    def put(self, items: Sequence[Delivery | Reconcile | TriggerPost]) -> None:
        _send_batch(self.client, self.settings.destination_dead_letter_url, [(d, 0) for d in items])

    def drain(self, *, limit: int = 10_000) -> Iterator[tuple[Delivery | Reconcile | TriggerPost, str]]:
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
                yield parse_delivery(json.loads(message["Body"])), message["ReceiptHandle"]

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
        # Google token sources by (secret name, digest of its value): a rotated secret gets a new one.
        self._oauth: dict[tuple[str, str], GoogleOAuth] = {}

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
        refresh = destination.type == "google_audience" and all(
            isinstance(data.get(k), str) and data.get(k) for k in ("client_id", "client_secret", "refresh_token"))
        if not isinstance(data, dict) or not (refresh or isinstance(data.get("access_token"), str)):
            raise InvalidConfig("an ad platform's secret must be JSON with an access_token (Google: or "
                                "client_id, client_secret and refresh_token)", destination=destination.name)
        return data

    def _google_token(self, destination: Destination, credentials: dict[str, str]) -> str | GoogleOAuth:
        if "refresh_token" not in credentials:
            return credentials["access_token"]
        digest = hashlib.sha256(json.dumps(credentials, sort_keys=True).encode()).hexdigest()
        key = (destination.secret, digest)
        source = self._oauth.get(key)
        if source is None:
            source = self._oauth[key] = GoogleOAuth(
                credentials["client_id"], credentials["client_secret"], credentials["refresh_token"],
                self.transport, token_url=self._base_url(credentials, TOKEN_URL, "token_url"))
        return source

    def _base_url(self, credentials: dict[str, str], default: str, field: str = "base_url") -> str:
        base = credentials.get(field)
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
                              destination.options["user_list_id"], self._google_token(destination, credentials),
                              self.transport,
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


class DynamoAudienceHoldings(AwsAdapter):
    """:class:`cdp.activation.audiences.holdings.Holdings` in ``AudienceHoldingsTable`` (HASH
    ``destination``, RANGE ``profile_id``; ``sent``: the JSON list of hashed members, ``at``, ``v``: the
    version conditional writes check; a record written before versions has none, read as 0)."""

    service = "dynamodb"

    def __init__(self, settings: Settings, *, client: Any = None, sleep: Any = time.sleep) -> None:
        super().__init__(settings, client=client)
        self.table = settings.audience_holdings_table
        self._sleep = sleep

    def held(self, destination: str, profile_ids: Sequence[str]) -> dict[str, list[Any]]:
        return {pid: h.rows for pid, h in self.read(destination, profile_ids).items()}

    def read(self, destination: str, profile_ids: Sequence[str]) -> dict[str, Holding]:
        found: dict[str, Holding] = {}
        ids = sorted(set(profile_ids))
        for start in range(0, len(ids), 100):
            request: dict[str, Any] = {self.table: {"Keys": [_hkey(destination, p) for p in ids[start:start + 100]],
                                                    "ConsistentRead": True}}
            for round_ in range(9):
                if round_:
                    self._sleep(min(0.05 * 2 ** (round_ - 1), 2.0))
                with aws_errors("cannot read audience holdings", destination=destination):
                    out = self.client.batch_get_item(RequestItems=request)
                for item in out.get("Responses", {}).get(self.table, []):
                    found[item["profile_id"]["S"]] = Holding(json.loads(item["sent"]["S"]),
                                                             int(item.get("v", {}).get("N", "0")))
                request = out.get("UnprocessedKeys") or {}
                if not request:
                    break
            else:
                raise ServiceThrottled("cannot read audience holdings", destination=destination)
        return found

    def write(self, destination: str, items: Iterable[tuple[str, list[Any], int]]) -> list[str]:
        """One conditional PutItem (or DeleteItem) per record: BatchWriteItem takes no conditions."""
        now, conflicts = str(int(time.time())), []
        for pid, rows, version in items:
            condition: dict[str, Any] = (
                {"ConditionExpression": "attribute_not_exists(v)"} if version == 0 else
                {"ConditionExpression": "v = :v", "ExpressionAttributeValues": {":v": {"N": str(version)}}})
            try:
                with aws_errors("cannot write audience holdings", destination=destination):
                    if rows:
                        self.client.put_item(TableName=self.table, **condition, Item={
                            **_hkey(destination, pid), "at": {"N": now}, "v": {"N": str(version + 1)},
                            "sent": {"S": json.dumps(rows, separators=(",", ":"))}})
                    else:
                        self.client.delete_item(TableName=self.table, Key=_hkey(destination, pid), **condition)
            except ConcurrentUpdate:
                conflicts.append(pid)
        return conflicts

    def put(self, destination: str, items: Iterable[tuple[str, list[Any]]]) -> None:
        now = str(int(time.time()))
        requests = {pid: ({"PutRequest": {"Item": {**_hkey(destination, pid), "at": {"N": now},
                                                   "sent": {"S": json.dumps(sent, separators=(",", ":"))}}}}
                          if sent else {"DeleteRequest": {"Key": _hkey(destination, pid)}})
                    for pid, sent in items}
        writes = list(requests.values())
        for start in range(0, len(writes), 25):
            pending: dict[str, Any] = {self.table: writes[start:start + 25]}
            for round_ in range(9):
                if round_:
                    self._sleep(min(0.05 * 2 ** (round_ - 1), 2.0))
                with aws_errors("cannot write audience holdings", destination=destination):
                    out = self.client.batch_write_item(RequestItems=pending)
                pending = out.get("UnprocessedItems") or {}
                if not pending:
                    break
            else:
                raise ServiceThrottled("cannot write audience holdings", destination=destination)

    def profiles(self, destination: str) -> Iterator[str]:
        kwargs: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "#d = :d",
                                  "ExpressionAttributeNames": {"#d": "destination", "#p": "profile_id"},
                                  "ExpressionAttributeValues": {":d": {"S": destination}},
                                  "ProjectionExpression": "#p"}
        while True:
            with aws_errors("cannot list audience holdings", destination=destination):
                page = self.client.query(**kwargs)
            for item in page.get("Items", []):
                yield item["profile_id"]["S"]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _hkey(destination: str, profile_id: str) -> dict[str, Any]:
    return {"destination": {"S": destination}, "profile_id": {"S": profile_id}}
