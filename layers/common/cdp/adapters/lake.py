"""The lake's filesystem: S3 through pyarrow (with the emulator's endpoint when one is set)."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from cdp.settings import Settings


@lru_cache(maxsize=4)
def lake_filesystem(settings: Settings) -> pafs.FileSystem:
    """pyarrow's S3 filesystem. pyarrow does not read AWS_ENDPOINT_URL: pass it explicitly.

    ``allow_delayed_open`` lets a small file go up as one PutObject instead of a three-request
    multipart upload (create, part, complete): a third of the requests for each archived batch.
    """
    kwargs: dict[str, object] = {"region": settings.aws_region, "allow_delayed_open": True}
    if settings.aws_endpoint_url:
        url = urlsplit(settings.aws_endpoint_url)
        kwargs.update(endpoint_override=url.netloc, scheme=url.scheme or "http",
                      allow_bucket_creation=False)
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


def lake_root(settings: Settings) -> str:
    return settings.lake_bucket
