"""Access-request archives in the lake bucket under ``exports/``, handed out by presigned URLs.

The objects take the bucket's default encryption (the stack's KMS key, as every lake object), so
the link must be signed with SigV4: the adapter signs with a client of its own made for that.
A lifecycle rule of template.yaml expires the archives after a week.
"""

from __future__ import annotations

from typing import Any

from cdp.adapters.aws import AwsAdapter, aws_client
from cdp.adapters.errors import aws_errors
from cdp.settings import Settings

_UNAVAILABLE = "export_store_unavailable"


class S3ExportArchives(AwsAdapter):
    service = "s3"

    def __init__(self, settings: Settings, *, client: Any = None, signer: Any = None) -> None:
        super().__init__(settings, client=client)
        self._signer = signer

    @property
    def signer(self) -> Any:
        if self._signer is None:
            self._signer = aws_client(self.settings, "s3", signature_version="s3v4")
        return self._signer

    def put(self, key: str, body: bytes) -> None:
        with aws_errors(_UNAVAILABLE, key=key):
            self.client.put_object(Bucket=self.settings.lake_bucket, Key=key, Body=body,
                                   ContentType="application/zip")

    def presigned_url(self, key: str, seconds: int) -> str:
        filename = key.rsplit("/", 1)[-1]
        with aws_errors(_UNAVAILABLE, key=key):
            url: str = self.signer.generate_presigned_url(
                "get_object", ExpiresIn=seconds,
                Params={"Bucket": self.settings.lake_bucket, "Key": key,
                        "ResponseContentDisposition": f'attachment; filename="{filename}"'})
        return url


def stack_export_stores(settings: Settings, *, config: Any, segments: Any = (), link_seconds: int | None = None) -> Any:
    """The :class:`cdp.privacy.export.ExportStores` of the stack ``settings`` names: its tables, its
    lake (read with pyarrow, as the customer view does) and this adapter for the archive."""
    from cdp.adapters.dynamo_profiles import DynamoIdentityStore
    from cdp.adapters.lake import lake_filesystem, lake_root
    from cdp.adapters.membership import DynamoMembershipStore
    from cdp.adapters.messages import DynamoMessageJournal
    from cdp.adapters.sources import DynamoSourceStore
    from cdp.lake.person import person_events
    from cdp.privacy.export import DEFAULT_LINK_SECONDS, ExportStores

    fs, root = lake_filesystem(settings), lake_root(settings)

    def read_events(identifiers: Any, first_seen: str | None, last_seen: str | None, limit: int) -> dict[str, Any]:
        with aws_errors("lake_unavailable"):
            return person_events(fs, root, identifiers, first_seen=first_seen, last_seen=last_seen,
                                 limit=limit).to_dict()

    return ExportStores(store=DynamoIdentityStore(settings), memberships=DynamoMembershipStore(settings),
                        journal=DynamoMessageJournal(settings), read_events=read_events,
                        archives=S3ExportArchives(settings), config=config, segments=tuple(segments),
                        sources=DynamoSourceStore(settings),
                        link_seconds=link_seconds or DEFAULT_LINK_SECONDS)
