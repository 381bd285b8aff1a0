"""Privacy adapters: the request and suppression records (PrivacyTable), and the stores an erasure
cleans and a verification scans (every table and every object version of the lake).

PrivacyTable items (``pk``, ``sk``):

* ``request#<id>`` / ``request``: the request record (``data``: its JSON);
* ``open`` / ``<id>``: an unfinished request and its ``due_at`` (one Query finds the overdue ones);
* ``suppressed`` / ``<sha256>``: a suppressed identifier (hash only), the request that asked, when.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from cdp.adapters.aws import AwsAdapter, aws_client
from cdp.adapters.errors import aws_errors
from cdp.errors import ServiceThrottled
from cdp.settings import Settings

if TYPE_CHECKING:  # the collector reads the suppression list through this module: keep it light
    from cdp.privacy.matching import Needles
    from cdp.privacy.requests import Person, PrivacyRequest
    from cdp.segments.engines import QueryEngine

WRITE_BATCH = 25
READ_BATCH = 100
UNPROCESSED_ROUNDS = 8
OPEN = ("received", "running", "failed")


def _batch_write(client: Any, table: str, requests: list[dict[str, Any]], reason: str) -> None:
    for start in range(0, len(requests), WRITE_BATCH):
        pending: dict[str, Any] = {table: requests[start:start + WRITE_BATCH]}
        for round_ in range(UNPROCESSED_ROUNDS + 1):
            if round_:
                time.sleep(min(0.05 * 2 ** (round_ - 1), 2.0))
            with aws_errors(reason, table=table):
                out = client.batch_write_item(RequestItems=pending)
            pending = out.get("UnprocessedItems") or {}
            if not pending:
                break
        else:
            raise ServiceThrottled(reason, table=table)


def _batch_get(client: Any, table: str, keys: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), READ_BATCH):
        request: dict[str, Any] = {table: {"Keys": keys[start:start + READ_BATCH]}}
        for _ in range(UNPROCESSED_ROUNDS + 1):
            with aws_errors(reason, table=table):
                out = client.batch_get_item(RequestItems=request)
            found += out.get("Responses", {}).get(table, [])
            request = out.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise ServiceThrottled(reason, table=table)
    return found


def _paged(call: Callable[..., dict[str, Any]], reason: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    while True:
        with aws_errors(reason, table=kwargs.get("TableName")):
            page = call(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class DynamoPrivacyStore(AwsAdapter):
    """Requests, the open list and the suppression list in PrivacyTable."""

    service = "dynamodb"

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        super().__init__(settings, client=client)
        self.table = settings.privacy_table

    def put_request(self, request: PrivacyRequest) -> None:
        item = {"pk": {"S": f"request#{request.request_id}"}, "sk": {"S": "request"},
                "status": {"S": request.status}, "data": {"S": json.dumps(request.to_dict())}}
        marker = {"pk": {"S": "open"}, "sk": {"S": request.request_id}}
        with aws_errors("could not store the privacy request", table=self.table):
            self.client.put_item(TableName=self.table, Item=item)
            if request.status in OPEN:
                self.client.put_item(TableName=self.table, Item={**marker, "due_at": {"S": request.due_at}})
            else:
                self.client.delete_item(TableName=self.table, Key=marker)

    def get_request(self, request_id: str) -> PrivacyRequest | None:
        with aws_errors("could not read the privacy request", table=self.table):
            item = self.client.get_item(TableName=self.table, ConsistentRead=True,
                                        Key={"pk": {"S": f"request#{request_id}"}, "sk": {"S": "request"}}).get("Item")
        from cdp.privacy.requests import PrivacyRequest

        return PrivacyRequest.from_dict(json.loads(item["data"]["S"])) if item else None

    def open_requests(self) -> dict[str, str]:
        """Unfinished request id -> due date."""
        items = _paged(self.client.query, "could not list open privacy requests", TableName=self.table,
                       KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "open"}})
        return {i["sk"]["S"]: i.get("due_at", {}).get("S", "") for i in items}

    def suppressed_hashes(self) -> set[str]:
        items = _paged(self.client.query, "could not read the suppression list", TableName=self.table,
                       KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "suppressed"}},
                       ProjectionExpression="sk")
        return {i["sk"]["S"] for i in items}

    def suppressed_by(self, hash_: str) -> str | None:
        with aws_errors("could not read the suppression list", table=self.table):
            item = self.client.get_item(TableName=self.table,
                                        Key={"pk": {"S": "suppressed"}, "sk": {"S": hash_}}).get("Item")
        return item.get("request_id", {}).get("S") if item else None

    def suppress(self, hashes: Iterable[str], *, request_id: str, at: str) -> None:
        _batch_write(self.client, self.table, [
            {"PutRequest": {"Item": {"pk": {"S": "suppressed"}, "sk": {"S": h}, "request_id": {"S": request_id},
                                     "at": {"S": at}}}} for h in sorted(set(hashes))], "could not suppress")

    def unsuppress(self, hashes: Iterable[str]) -> None:
        _batch_write(self.client, self.table, [
            {"DeleteRequest": {"Key": {"pk": {"S": "suppressed"}, "sk": {"S": h}}}} for h in sorted(set(hashes))],
            "could not lift a suppression")


# ---------------------------------------------------------------- the lake's objects, every version

#: Prefixes holding Parquet tables (rows are read and matched); everything else is text.
EVENTS = "events/"
SNAPSHOTS = ("identity/", "profiles/")


def object_text(key: str, body: bytes) -> str:
    """What a trace search reads in an object: Parquet rows as JSON, text (gunzipped), and the
    base64 payloads of failure and quarantine records decoded."""
    if key.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(body))
        return "\n".join(json.dumps(row, default=str, ensure_ascii=False) for row in table.to_pylist())
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    text = body.decode("utf-8", "replace")
    return text + "\n" + "\n".join(_decoded_payloads(text))


def _decoded_payloads(text: str) -> Iterator[str]:
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        for key in ("data", "raw_body", "body"):
            value = record.get(key)
            if isinstance(value, str) and len(value) > 8:
                try:
                    raw = base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    continue
                if raw[:2] == b"\x1f\x8b":
                    try:
                        raw = gzip.decompress(raw)
                    except OSError:
                        continue
                yield raw.decode("utf-8", "replace")


def store_of(key: str) -> str:
    """The store an object key belongs to: ``lake:events``, ``lake:quarantine``..."""
    return "lake:" + key.split("/", 1)[0]


class LakeObjects(AwsAdapter):
    service = "s3"

    def __init__(self, settings: Settings, *, client: Any = None) -> None:
        super().__init__(settings, client=client)
        self.bucket = settings.lake_bucket

    def versions(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        """Every version and delete marker under ``prefix``: key, version id, latest, marker."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            with aws_errors("could not list the lake's object versions", prefix=prefix):
                page = self.client.list_object_versions(**kwargs)
            for v in page.get("Versions", []):
                yield {"key": v["Key"], "version": v.get("VersionId"), "latest": v.get("IsLatest", False),
                       "marker": False}
            for m in page.get("DeleteMarkers", []):
                yield {"key": m["Key"], "version": m.get("VersionId"), "latest": m.get("IsLatest", False),
                       "marker": True}
            if not page.get("IsTruncated"):
                return
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")

    def prefixes(self) -> list[str]:
        """The top-level folders of the lake, those holding only old versions included."""
        found: list[str] = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Delimiter": "/"}
        while True:
            with aws_errors("could not list the lake's folders"):
                page = self.client.list_object_versions(**kwargs)
            found += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            if not page.get("IsTruncated"):
                return found
            kwargs["KeyMarker"] = page.get("NextKeyMarker")
            kwargs["VersionIdMarker"] = page.get("NextVersionIdMarker")

    def read(self, key: str, version: str | None) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version and version != "null":
            kwargs["VersionId"] = version
        with aws_errors("could not read a lake object", key=key):
            return bytes(self.client.get_object(**kwargs)["Body"].read())

    def put(self, key: str, body: bytes) -> None:
        with aws_errors("could not write a lake object", key=key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def delete_version(self, key: str, version: str | None) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version:
            kwargs["VersionId"] = version
        with aws_errors("could not delete a lake object version", key=key):
            self.client.delete_object(**kwargs)

    def purge_noncurrent(self, prefix: str) -> int:
        """Delete every noncurrent version and delete marker under ``prefix``; the count."""
        purged = 0
        for v in list(self.versions(prefix)):
            if not v["latest"] or v["marker"]:
                self.delete_version(v["key"], v["version"])
                purged += 1
        return purged


class LakeFiles:
    """The lake's files in a local directory (``LAKE_ROOT=file://...``, the local stack), seen as
    :class:`LakeObjects` sees the bucket: keys relative to the directory, each file its only
    version (``version`` None: a disk keeps no old versions)."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def versions(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        import pyarrow.fs as pafs

        with aws_errors("could not list the lake's files", prefix=prefix):
            infos = self.fs.get_file_info(pafs.FileSelector(self.path(prefix).rstrip("/"), recursive=True,
                                                            allow_not_found=True))
        for info in sorted((i for i in infos if i.type == pafs.FileType.File), key=lambda i: i.path):
            yield {"key": info.path[len(self.root) + 1:], "version": None, "latest": True, "marker": False}

    def prefixes(self) -> list[str]:
        import pyarrow.fs as pafs

        with aws_errors("could not list the lake's folders"):
            infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        return sorted(f"{i.base_name}/" for i in infos if i.type == pafs.FileType.Directory)

    def read(self, key: str, version: str | None) -> bytes:
        with aws_errors("could not read a lake file", key=key), self.fs.open_input_stream(self.path(key)) as f:
            return bytes(f.read())

    def put(self, key: str, body: bytes) -> None:
        """Replace the file whole: written under a hidden name (readers skip it), then renamed."""
        import uuid

        folder, _, name = self.path(key).rpartition("/")
        work = f"{folder}/_erasing-{uuid.uuid4().hex}-{name}"
        with aws_errors("could not write a lake file", key=key):
            with self.fs.open_output_stream(work) as f:
                f.write(body)
            self.fs.move(work, self.path(key))

    def delete_version(self, key: str, version: str | None) -> None:
        with aws_errors("could not delete a lake file", key=key):
            self.fs.delete_file(self.path(key))


def lake_files(settings: Settings) -> LakeFiles | None:
    """The lake's directory when ``lake_root`` puts it on disk; None when the lake is the bucket."""
    from cdp.adapters.lake import lake_filesystem, lake_on_disk, lake_root

    return LakeFiles(lake_filesystem(settings), lake_root(settings)) if lake_on_disk(settings) else None


class AwsErasureStores:
    """:class:`cdp.privacy.erase.ErasureStores` on the stack of ``settings``."""

    def __init__(self, settings: Settings, *, engine: QueryEngine, segments: Sequence[str]) -> None:
        self.settings = settings
        self.engine = engine
        self.segments = list(segments)
        self.objects = LakeObjects(settings)
        # The lake's Parquet (events/ and the snapshots) on disk instead of in the bucket: locally only.
        self.files = lake_files(settings)

    @property
    def dynamodb(self) -> Any:
        return aws_client(self.settings, "dynamodb")

    # ------------------------------------------------------------ lake
    def lake_days(self, needles: Needles, days: list[str]) -> list[str]:
        from cdp.privacy.matching import days_query

        sql = days_query(needles, days)
        if sql is None:
            return []
        return sorted(str(row["dt"]) for row in self.engine.run(sql).rows)

    def erase_event_days(self, days: list[str], needles: Needles) -> dict[str, int]:
        from cdp.adapters.lake import lake_filesystem, lake_root
        from cdp.lake.compaction import compact_partition
        from cdp.lake.erasure import person_rows

        fs, root = lake_filesystem(self.settings), lake_root(self.settings)
        removed = {"lake:events:rows": 0, "lake:events:files": 0, "lake:events:versions": 0}
        for day in days:
            with aws_errors("could not rewrite a day of the lake", dt=day):
                report = compact_partition(fs, root, day, drop=lambda t: person_rows(t, needles))
            removed["lake:events:rows"] += report.rows_dropped
            removed["lake:events:files"] += len(report.removed) if report.rows_dropped else 0
            if self.files is None:  # the bucket keeps the rewritten files as noncurrent versions
                removed["lake:events:versions"] += self.objects.purge_noncurrent(f"{EVENTS}dt={day}/")
        return removed

    @property
    def bucket(self) -> str:
        return self.settings.lake_bucket

    def erase_snapshots(self, needles: Needles) -> dict[str, int]:
        """The identity and profiles snapshots, in the bucket and, when the lake is on disk, there."""
        return self._scrub_all([(store, prefix) for prefix in SNAPSHOTS for store in self._stores()], needles)

    def erase_objects(self, needles: Needles) -> dict[str, int]:
        """Every object of the lake outside events/ and the snapshots: quarantine, failures,
        reports, query results, import reports — every version; and every other file of the lake's
        directory when it is on disk (then the bucket's events/, if any, is not the lake: scrubbed too)."""
        handled = {*SNAPSHOTS} if self.files is not None else {EVENTS, *SNAPSHOTS}
        todo: list[tuple[Any, str]] = [(self.objects, p) for p in sorted(set(self.objects.prefixes()) - handled)]
        if self.files is not None:
            todo += [(self.files, p) for p in sorted(set(self.files.prefixes()) - {EVENTS, *SNAPSHOTS})]
        return self._scrub_all(todo, needles)

    def _stores(self) -> list[Any]:
        return [self.objects] if self.files is None else [self.objects, self.files]

    def _scrub_all(self, todo: Sequence[tuple[Any, str]], needles: Needles) -> dict[str, int]:
        removed: dict[str, int] = {}
        for store, prefix in todo:
            for name, count in self._scrub(store, prefix, needles).items():
                removed[name] = removed.get(name, 0) + count
        return removed

    def _scrub(self, objects: LakeObjects | LakeFiles, prefix: str, needles: Needles) -> dict[str, int]:
        """Rewrite current objects holding the person without them (or delete them), and delete
        every noncurrent version that holds them."""
        store = store_of(prefix)
        counts = {f"{store}:objects": 0, f"{store}:versions": 0}
        for v in list(objects.versions(prefix)):
            if v["marker"]:
                continue
            body = objects.read(v["key"], v["version"])
            if not needles.found_in(object_text(v["key"], body)):
                continue
            if v["latest"]:
                kept = _without_person(v["key"], body, needles)
                if kept is None:
                    objects.delete_version(v["key"], None)  # a delete marker: the key is gone
                else:
                    objects.put(v["key"], kept)
                counts[f"{store}:objects"] += 1
            if v["version"] is not None:  # a file on disk has no other version
                objects.delete_version(v["key"], v["version"])
                counts[f"{store}:versions"] += 1
        return counts

    # ------------------------------------------------------------ DynamoDB
    def erase_items(self, person: Person, needles: Needles) -> dict[str, int]:
        s, db = self.settings, self.dynamodb
        counts: dict[str, int] = {}
        # Segment membership: (segment, profile) for every segment and profile of the person.
        keys = [{"segment": {"S": seg}, "profile_id": {"S": pid}} for seg in self.segments
                for pid in person.profile_ids]
        found = _batch_get(db, s.membership_table, keys, "could not read memberships")
        counts["membership"] = self._delete(s.membership_table, [
            {"segment": i["segment"], "profile_id": i["profile_id"]} for i in found])
        # Sent-message journal and effect-ledger keys (email#<segment>#<profile>#<run>, ...).
        ledger = [{"id": i["id"]} for i in self._scan(s.idempotency_table, "id", person.profile_ids)]
        counts["idempotency"] = self._delete(s.idempotency_table, ledger)
        # Merge log: the person's own entries and entries elsewhere that name them.
        entries = {(i["profile_id"]["S"], i["entry_id"]["S"]) for pid in person.profile_ids
                   for i in _paged(db.query, "could not read the merge log", TableName=s.merge_log_table,
                                   KeyConditionExpression="profile_id = :p",
                                   ExpressionAttributeValues={":p": {"S": pid}},
                                   ProjectionExpression="profile_id, entry_id")}
        entries |= {(i["profile_id"]["S"], i["entry_id"]["S"]) for i in self._scan_lists(
            s.merge_log_table, ("identifiers", "other_profile_ids"), [*person.identifiers, *person.profile_ids])}
        counts["merge_log"] = self._delete(s.merge_log_table, [
            {"profile_id": {"S": p}, "entry_id": {"S": e}} for p, e in sorted(entries)])
        # Identity index: every identifier of the person, and any entry pointing at their profiles.
        pointers = {i["identifier"]["S"] for i in _batch_get(
            db, s.identity_table, [{"identifier": {"S": i}} for i in person.identifiers], "could not read identity")}
        counts["identity"] = self._delete(s.identity_table, [{"identifier": {"S": i}} for i in sorted(pointers)])
        profiles = _batch_get(db, s.profiles_table, [{"profile_id": {"S": p}} for p in person.profile_ids],
                              "could not read profiles")
        counts["profiles"] = self._delete(s.profiles_table, [{"profile_id": i["profile_id"]} for i in profiles])
        return {f"dynamodb:{k}": v for k, v in counts.items()}

    def _delete(self, table: str, keys: list[dict[str, Any]]) -> int:
        _batch_write(self.dynamodb, table, [{"DeleteRequest": {"Key": k}} for k in keys], "could not erase items")
        return len(keys)

    def _scan(self, table: str, attribute: str, substrings: Sequence[str]) -> list[dict[str, Any]]:
        """Items whose ``attribute`` contains any of ``substrings`` (a filtered Scan: the ledger's keys
        cannot be listed by profile)."""
        if not substrings:
            return []
        values = {f":v{n}": {"S": v} for n, v in enumerate(substrings)}
        condition = " OR ".join(f"contains(#a, :v{n})" for n in range(len(substrings)))
        return list(_paged(self.dynamodb.scan, "could not scan for the person", TableName=table,
                           FilterExpression=condition, ExpressionAttributeNames={"#a": attribute},
                           ExpressionAttributeValues=values))

    def _scan_lists(self, table: str, attributes: Sequence[str], values: Sequence[str]) -> list[dict[str, Any]]:
        if not values:
            return []
        names = {f"#a{n}": a for n, a in enumerate(attributes)}
        vals = {f":v{n}": {"S": v} for n, v in enumerate(values)}
        condition = " OR ".join(f"contains(#a{a}, :v{v})" for a in range(len(attributes)) for v in range(len(values)))
        return list(_paged(self.dynamodb.scan, "could not scan for the person", TableName=table,
                           FilterExpression=condition, ExpressionAttributeNames=names,
                           ExpressionAttributeValues=vals))


def _without_person(key: str, body: bytes, needles: Needles) -> bytes | None:
    """The object without the person's rows or lines; None when nothing else is left (or it is not
    made of rows or lines, e.g. a dashboard page: then the whole object goes)."""
    if key.endswith(".parquet"):
        import pyarrow.parquet as pq

        from cdp.lake.erasure import person_rows

        table = pq.read_table(io.BytesIO(body))
        import pyarrow.compute as pc

        kept = table.filter(pc.invert(person_rows(table, needles)))
        if kept.num_rows == 0:
            return None
        out = io.BytesIO()
        pq.write_table(kept, out, compression="zstd")
        if pq.read_metadata(io.BytesIO(out.getvalue())).num_rows != kept.num_rows:
            raise ValueError(f"rewrite of {key} lost rows")
        return out.getvalue()
    if not key.endswith((".jsonl", ".ndjson")):
        return None
    zipped = body[:2] == b"\x1f\x8b"
    text = (gzip.decompress(body) if zipped else body).decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip() and not needles.found_in(object_text(key, line.encode()))]
    if not lines:
        return None
    out_bytes = ("\n".join(lines) + "\n").encode("utf-8")
    return gzip.compress(out_bytes) if zipped else out_bytes


# ---------------------------------------------------------------- verification

class AwsTraceScanner:
    """Everything a verification reads: every item of every table of the stack, every version of
    every object of the lake (events/ only in the days given, when given), and, when the lake is on
    disk (the local stack), every file of its directory, whatever the days."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.objects = LakeObjects(settings)
        self.files = lake_files(settings)

    def tables(self) -> dict[str, str]:
        s = self.settings
        return {"profiles": s.profiles_table, "identity": s.identity_table, "merge_log": s.merge_log_table,
                "idempotency": s.idempotency_table, "sources": s.sources_table, "membership": s.membership_table}

    def items(self) -> Iterator[tuple[str, str, str]]:
        db = aws_client(self.settings, "dynamodb")
        for name, table in self.tables().items():
            yield f"dynamodb:{name}", "", ""  # the store was scanned, even if empty
            for item in _paged(db.scan, "could not scan a table", TableName=table):
                # A binary value as DynamoDB's JSON carries it (base64): the profiles' packed windows.
                text = json.dumps(item, ensure_ascii=False, sort_keys=True,
                                  default=lambda value: base64.b64encode(value).decode("ascii"))
                # Where, without the item's key (it may be the identifier itself): a digest of the item.
                yield f"dynamodb:{name}", f"{table} item {hashlib.sha256(text.encode()).hexdigest()[:16]}", text

    def lake(self, days: Sequence[str] | None) -> Iterator[tuple[str, str, str]]:
        wanted = {f"{EVENTS}dt={d}/" for d in days} if days else None
        for v in self.objects.versions():
            store = store_of(v["key"])
            if v["marker"]:
                continue
            if wanted is not None and v["key"].startswith(EVENTS) and v["latest"] \
                    and not any(v["key"].startswith(w) for w in wanted):
                continue
            body = self.objects.read(v["key"], v["version"])
            where = v["key"] + ("" if v["latest"] else f" (noncurrent {v['version']})")
            yield store, where, object_text(v["key"], body)
        if self.files is not None:
            for v in self.files.versions():
                yield store_of(v["key"]), self.files.path(v["key"]), object_text(v["key"], self.files.read(v["key"], None))


def build_privacy_stores(settings: Settings, *, segments: Sequence[str], config: Any = None,
                         destinations: Any = None) -> Any:
    """The stores a privacy request runs on (:class:`cdp.jobs.privacy_job.PrivacyStores`) for ``settings``;
    with the identity ``config``, the export stores too (the archive reads identifiers by its types);
    with ``destinations`` (and their secrets' prefix), an erasure takes the person out of every ad
    audience (:class:`cdp.activation.destinations.AudienceErasureNotice`)."""
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.engines import query_engine
    from cdp.adapters.exports import stack_export_stores
    from cdp.jobs.privacy_job import PrivacyStores
    from cdp.privacy.verify import verify

    scanner = AwsTraceScanner(settings)
    identity = DynamoIdentityStore(settings)
    notices = None  # the registered ones (cdp.privacy.erase.register_notice)
    if destinations and settings.destination_secret_prefix:
        from cdp.activation.audiences.sync import StoreProfileViews
        from cdp.activation.destinations import AudienceErasureNotice
        from cdp.adapters.destinations import DynamoAudienceHoldings, SecretTargets
        from cdp.privacy.erase import registered_notices

        holdings = DynamoAudienceHoldings(settings) if settings.audience_holdings_table else None
        notices = [*registered_notices(), AudienceErasureNotice(destinations, SecretTargets(settings),
                                                                StoreProfileViews(identity), holdings=holdings)]
    return PrivacyStores(
        privacy=DynamoPrivacyStore(settings), identity=identity, notices=notices,
        erasure=AwsErasureStores(settings, engine=query_engine(settings), segments=segments),
        verify=lambda needles, days: verify(needles, scanner, days=days),
        export=stack_export_stores(settings, config=config, segments=segments) if config is not None else None)


class SqsPrivacyQueue(AwsAdapter):
    """Hands an accepted request to the privacy function."""

    service = "sqs"

    def __call__(self, request_id: str) -> None:
        with aws_errors("could not queue the privacy request", request_id=request_id):
            self.client.send_message(QueueUrl=self.settings.privacy_queue_url,
                                     MessageBody=json.dumps({"request_id": request_id}))
