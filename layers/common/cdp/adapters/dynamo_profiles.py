"""DynamoDB implementation of :class:`cdp.identity.store.IdentityStore`, on PynamoDB.

Table names, region and endpoint come from :class:`cdp.settings.Settings` when a store is built:
each store binds its own model classes, so nothing is named or connected at import time.
Items:

* identity table: ``identifier`` -> ``profile_id`` (one GetItem resolves any identifier);
* profiles table: the profile, with its window of applied messageIds and a ``version``
  (PynamoDB ``VersionAttribute``: every save is conditional on the version read);
* merge-log table: ``profile_id`` + ``entry_id`` (time-sortable) with the evidence.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import (
    BinaryAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from cdp.adapters.aws import pynamodb_connection, pynamodb_meta
from cdp.adapters.errors import aws_errors
from cdp.errors import ConcurrentUpdate, IdentifierTaken, StoreError
from cdp.identity.computed import ComputedTraits, Consent, Lifecycle
from cdp.identity.profile import Profile
from cdp.identity.store import MergeLogEntry
from cdp.settings import Settings

_TRANSACTION_LIMIT = 100


@dataclass(frozen=True)
class _Models:
    # Typed as Any: the classes are built at runtime, so their attributes are unknown to mypy.
    profile: Any
    identity: Any
    merge_log: Any
    connection: Connection


def bind_models(settings: Settings) -> _Models:
    """PynamoDB model classes bound to the tables, region, endpoint and timeouts of ``settings``."""

    class ProfileItem(Model):
        Meta = type("Meta", (), pynamodb_meta(settings, settings.profiles_table))  # type: ignore[assignment]

        profile_id = UnicodeAttribute(hash_key=True)
        identifiers = ListAttribute(of=UnicodeAttribute, default=list)
        traits = JSONAttribute(default=dict)
        trait_stamps = JSONAttribute(default=dict)
        first_seen = UnicodeAttribute(null=True)
        last_seen = UnicodeAttribute(null=True)
        event_count = NumberAttribute(default=0)
        # The window of applied messageIds: their 9-byte digests end to end in one binary value (one
        # attribute to bill and parse, not 200). Items written before it hold the list in ``recent``.
        window = BinaryAttribute(null=True, legacy_encoding=False)
        recent = ListAttribute(of=UnicodeAttribute, null=True)
        merged_into = UnicodeAttribute(null=True)
        created_at = UnicodeAttribute(null=True)
        updated_at = UnicodeAttribute(null=True)
        computed = JSONAttribute(default=dict)
        lifecycle = JSONAttribute(default=dict)
        consent = JSONAttribute(default=dict)
        do_not_link = ListAttribute(of=UnicodeAttribute, default=list)
        version = VersionAttribute()

    class IdentityItem(Model):
        Meta = type("Meta", (), pynamodb_meta(settings, settings.identity_table))  # type: ignore[assignment]

        identifier = UnicodeAttribute(hash_key=True)
        profile_id = UnicodeAttribute()

    class MergeLogItem(Model):
        Meta = type("Meta", (), pynamodb_meta(settings, settings.merge_log_table))  # type: ignore[assignment]

        profile_id = UnicodeAttribute(hash_key=True)
        entry_id = UnicodeAttribute(range_key=True)
        kind = UnicodeAttribute()
        at = UnicodeAttribute()
        message_id = UnicodeAttribute(null=True)
        rule = UnicodeAttribute(null=True)
        identifiers = ListAttribute(of=UnicodeAttribute, default=list)
        other_profile_ids = ListAttribute(of=UnicodeAttribute, default=list)
        details = JSONAttribute(default=dict)

    return _Models(ProfileItem, IdentityItem, MergeLogItem, pynamodb_connection(settings))


_PROFILE_FIELDS = (
    "identifiers",
    "traits",
    "trait_stamps",
    "first_seen",
    "last_seen",
    "event_count",
    "merged_into",
    "created_at",
    "updated_at",
    "do_not_link",
)


#: Bytes of one message key's digest (cdp.identity.profile.message_key: 12 base64url characters).
DIGEST_BYTES = 9


def pack_window(keys: Sequence[str]) -> tuple[bytes | None, list[str] | None]:
    """The window as stored: (the digests end to end, None), or (None, the keys) if any key is not a
    digest of DIGEST_BYTES (none is; the list form stays readable and writable)."""
    if not keys:
        return None, None
    try:
        digests = [base64.urlsafe_b64decode(key) for key in keys]
    except ValueError:
        return None, list(keys)
    if any(len(d) != DIGEST_BYTES or base64.urlsafe_b64encode(d).decode() != key for d, key in zip(digests, keys,
                                                                                                      strict=True)):
        return None, list(keys)
    return b"".join(digests), None


def unpack_window(packed: bytes) -> list[str]:
    return [base64.urlsafe_b64encode(packed[i:i + DIGEST_BYTES]).decode() for i in range(0, len(packed), DIGEST_BYTES)]


class DynamoIdentityStore:
    """The identity store on the profiles, identity and merge-log tables of ``settings``."""

    #: Retryable failures in a row (throttling, timeouts: the SDK's own retries already spent) a scan
    #: outlasts, each time resuming after the last item it read; then it raises.
    SCAN_RETRIES = 5
    SCAN_BACKOFF_S = 0.2

    def __init__(self, settings: Settings, *, claim_transaction_min: int | None = None,
                 scan_page_size: int | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._settings = settings
        self._scan_page_size = scan_page_size  # items per Scan call; None: DynamoDB's 1 MB pages
        self._sleep = sleep
        self._claim_transaction_min = (settings.claim_transaction_min if claim_transaction_min is None
                                       else claim_transaction_min)
        self._bound: _Models | None = None
        self.requests: Counter[str] = Counter()
        self._requests_lock = threading.Lock()  # unify writes a batch's survivors from several threads

    def _count(self, operation: str, n: int) -> None:
        with self._requests_lock:
            self.requests[operation] += n

    @property
    def _models(self) -> _Models:
        if self._bound is None:
            self._bound = bind_models(self._settings)
        return self._bound

    # --------------------------------------------------------------- conversions
    def _to_item(self, profile: Profile) -> Any:
        item = self._models.profile(profile.profile_id)
        for name in _PROFILE_FIELDS:
            setattr(item, name, getattr(profile, name))
        item.window, item.recent = pack_window(profile.recent)
        item.computed = profile.computed.to_dict()
        item.lifecycle = profile.lifecycle.to_dict()
        item.consent = profile.consent.to_dict()
        if profile.version is not None:
            item.version = profile.version
        return item

    @staticmethod
    def _to_profile(item: Any) -> Profile:
        values = {name: getattr(item, name) for name in _PROFILE_FIELDS}
        values["event_count"] = int(values["event_count"] or 0)
        values["identifiers"] = list(values["identifiers"] or [])
        values["recent"] = unpack_window(item.window) if item.window else list(item.recent or [])
        values["do_not_link"] = list(values["do_not_link"] or [])
        for name in ("traits", "trait_stamps"):
            values[name] = values[name] or {}
        version = item.version
        return Profile(item.profile_id, version=None if version is None else int(version),
                       computed=ComputedTraits.from_dict(item.computed), lifecycle=Lifecycle.from_dict(item.lifecycle),
                       consent=Consent.from_dict(item.consent), **values)

    # --------------------------------------------------------------- reads
    def get_pointers(self, identifiers: Collection[str]) -> dict[str, str]:
        keys = list(dict.fromkeys(identifiers))
        if not keys:
            return {}
        self._count("BatchGetItem", -(-len(keys) // 100))
        with aws_errors("identity index read failed"):
            return {
                item.identifier: item.profile_id
                for item in self._models.identity.batch_get(keys, consistent_read=True)
            }

    def get_profiles(self, profile_ids: Collection[str]) -> dict[str, Profile]:
        keys = list(dict.fromkeys(profile_ids))
        if not keys:
            return {}
        self._count("BatchGetItem", -(-len(keys) // 100))
        with aws_errors("profile read failed"):
            items = list(self._models.profile.batch_get(keys, consistent_read=True))
        return {item.profile_id: self._to_profile(item) for item in items}

    # --------------------------------------------------------------- conditional writes
    def claim_identifiers(self, claims: Mapping[str, str]) -> None:
        """Conditional puts when there are few claims, else one transaction per 100.

        A transaction is one request whatever its size, but moto's cost per transaction grows with
        the table's size, so a handful of claims go as single conditional puts.
        """
        items = sorted(claims.items())
        if len(items) <= self._claim_transaction_min:
            for identifier, profile_id in items:
                self._claim_one(identifier, profile_id)
            return
        for start in range(0, len(items), _TRANSACTION_LIMIT):
            self._claim_many(items[start : start + _TRANSACTION_LIMIT])

    def _claim_condition(self, profile_id: str) -> Any:
        model = self._models.identity
        return model.identifier.does_not_exist() | (model.profile_id == profile_id)

    def _claim_one(self, identifier: str, profile_id: str) -> None:
        self._count("PutItem", 1)
        try:
            with aws_errors("identifier claim failed"):
                self._models.identity(identifier, profile_id=profile_id).save(
                    condition=self._claim_condition(profile_id)
                )
        except ConcurrentUpdate as exc:
            raise IdentifierTaken(
                "identifier claimed by another writer", identifiers=[identifier]
            ) from exc.__cause__

    def _claim_many(self, chunk: list[tuple[str, str]]) -> None:
        model = self._models.identity
        self._count("TransactWriteItems", 1)
        try:
            with aws_errors("identifier claim failed"), TransactWrite(
                connection=self._models.connection
            ) as transaction:
                for identifier, profile_id in chunk:
                    transaction.save(
                        model(identifier, profile_id=profile_id), condition=self._claim_condition(profile_id)
                    )
        except ConcurrentUpdate as exc:
            # Cancelled: name the identifiers whose condition failed (all of them if DynamoDB
            # gave no reasons). Cancelled for another reason (a conflict) stays a ConcurrentUpdate.
            reasons = getattr(exc.__cause__, "cancellation_reasons", None) or []
            taken = [
                chunk[i][0]
                for i, r in enumerate(reasons)
                if r is not None and r.code == "ConditionalCheckFailed"
            ]
            if taken or not reasons:
                raise IdentifierTaken("identifier claimed by another writer", identifiers=taken) from exc.__cause__
            raise

    def put_profile(self, profile: Profile) -> None:
        item = self._to_item(profile)
        self._count("PutItem", 1)
        try:
            with aws_errors("profile write failed", profile_id=profile.profile_id):
                item.save()
        except ConcurrentUpdate as exc:
            raise ConcurrentUpdate(
                "profile changed since it was read", profile_id=profile.profile_id
            ) from exc.__cause__
        profile.version = int(item.version)

    def put_merge(self, survivor: Profile, tombstones: Sequence[Profile]) -> None:
        profiles = [survivor, *tombstones]
        items = [self._to_item(p) for p in profiles]
        self._count("TransactWriteItems", 1)
        try:
            with aws_errors("merge write failed", profile_id=survivor.profile_id), TransactWrite(
                connection=self._models.connection
            ) as transaction:
                for item in items:
                    transaction.save(item)
        except ConcurrentUpdate as exc:
            raise ConcurrentUpdate(
                "a merged profile changed since it was read", profile_id=survivor.profile_id
            ) from exc.__cause__
        for profile, item in zip(profiles, items, strict=True):
            profile.version = int(item.version)

    # --------------------------------------------------------------- batch writes
    def set_pointers(self, pointers: Mapping[str, str]) -> None:
        if not pointers:
            return
        model = self._models.identity
        self._count("BatchWriteItem", -(-len(pointers) // 25))
        with aws_errors("identity index write failed"), model.batch_write() as batch:
            for identifier, profile_id in sorted(pointers.items()):
                batch.save(model(identifier, profile_id=profile_id))

    def delete_pointers(self, identifiers: Collection[str]) -> None:
        if not identifiers:
            return
        model = self._models.identity
        self._count("BatchWriteItem", -(-len(identifiers) // 25))
        with aws_errors("identity index delete failed"), model.batch_write() as batch:
            for identifier in sorted(set(identifiers)):
                batch.delete(model(identifier))

    def append_merge_log(self, entries: Sequence[MergeLogEntry]) -> None:
        if not entries:
            return
        model = self._models.merge_log
        unique = {(e.profile_id, e.entry_id): e for e in entries}
        self._count("BatchWriteItem", -(-len(unique) // 25))
        with aws_errors("merge log write failed"), model.batch_write() as batch:
            for (profile_id, entry_id), entry in sorted(unique.items()):
                batch.save(
                    model(
                        profile_id,
                        entry_id,
                        kind=entry.kind,
                        at=entry.at,
                        message_id=entry.message_id,
                        rule=entry.rule,
                        identifiers=list(entry.identifiers),
                        other_profile_ids=list(entry.other_profile_ids),
                        details=dict(entry.details),
                    )
                )

    def read_merge_log(self, profile_id: str) -> list[MergeLogEntry]:
        self._count("Query", 1)
        with aws_errors("merge log read failed", profile_id=profile_id):
            return [
                MergeLogEntry(
                    item.profile_id,
                    item.kind,
                    item.at,
                    item.message_id,
                    item.rule,
                    tuple(item.identifiers or ()),
                    tuple(item.other_profile_ids or ()),
                    item.details or {},
                )
                for item in self._models.merge_log.query(profile_id)
            ]

    # --------------------------------------------------------------- scans
    def scan_profiles(self) -> Iterator[Profile]:
        for item in self._scan(self._models.profile, "profile scan failed"):
            yield self._to_profile(item)

    def scan_pointers(self) -> Iterator[tuple[str, str]]:
        for item in self._scan(self._models.identity, "identity index scan failed"):
            yield item.identifier, item.profile_id

    def _scan(self, model: Any, reason: str) -> Iterator[Any]:
        """Every item of ``model``'s table, once. A scan reads the whole table page by page, so one
        throttled or timed-out page must not undo it (a scheduled job would fail for good after its
        retries): it resumes after the last item read, after a pause."""
        start: dict[str, Any] | None = None
        failures = 0
        while True:
            results = model.scan(last_evaluated_key=start, page_size=self._scan_page_size)
            try:
                with aws_errors(reason):
                    for item in results:
                        failures = 0
                        yield item
                return
            except StoreError as exc:
                if not exc.retryable or failures >= self.SCAN_RETRIES:
                    raise
                self._sleep(self.SCAN_BACKOFF_S * 2**failures)
                failures += 1
                start = results.last_evaluated_key

    @property
    def request_count(self) -> int:
        return sum(self.requests.values())
