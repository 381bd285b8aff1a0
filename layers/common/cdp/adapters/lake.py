"""The lake's filesystem: S3 through pyarrow (with the emulator's endpoint when one is set).

On AWS the lake is the bucket ``lake_bucket``. The local stack may set ``lake_root`` to a
``file://`` directory instead: the same pyarrow filesystem interface over local disk, so the
handlers' code is the same and only configuration differs.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import unquote, urlsplit

import pyarrow.fs as pafs

from cdp.errors import MalformedSetting
from cdp.settings import Settings


@lru_cache(maxsize=4)
def lake_filesystem(settings: Settings) -> pafs.FileSystem:
    """pyarrow's local filesystem under a ``file://`` ``lake_root``; else :func:`bucket_filesystem`."""
    if _local_dir(settings) is not None:
        return pafs.LocalFileSystem()
    return bucket_filesystem(settings)


@lru_cache(maxsize=4)
def bucket_filesystem(settings: Settings) -> pafs.FileSystem:
    """The bucket ``lake_bucket`` through pyarrow's S3 filesystem, whatever ``lake_root`` says: for
    what lives in the bucket beside the Parquet lake (quarantine, reports). pyarrow does not read
    AWS_ENDPOINT_URL: pass it explicitly.

    Timeouts and attempts are those of every boto3 client (:mod:`cdp.adapters.aws`), in the AWS
    C++ SDK's terms: the standard retry strategy, ``aws_max_attempts`` calls in all. Its errors are
    ``OSError``, which :func:`cdp.adapters.errors.aws_errors` translates like botocore's.

    ``allow_delayed_open`` lets a small file go up as one PutObject instead of a three-request
    multipart upload (create, part, complete): a third of the requests for each archived batch.
    """
    kwargs: dict[str, object] = {
        "region": settings.aws_region,
        "allow_delayed_open": True,
        "connect_timeout": settings.aws_connect_timeout,
        "request_timeout": settings.aws_read_timeout,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=settings.aws_max_attempts),
    }
    if settings.aws_endpoint_url:
        url = urlsplit(settings.aws_endpoint_url)
        kwargs.update(endpoint_override=url.netloc, scheme=url.scheme or "http",
                      allow_bucket_creation=False)
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


def lake_root(settings: Settings) -> str:
    """The lake's base path in :func:`lake_filesystem`: a directory, or the bucket."""
    local = _local_dir(settings)
    return settings.lake_bucket if local is None else local


def lake_on_disk(settings: Settings) -> bool:
    """Whether the lake's Parquet is in a local directory (``lake_root``) rather than the bucket."""
    return _local_dir(settings) is not None


def _local_dir(settings: Settings) -> str | None:
    if not settings.lake_root:
        return None
    url = urlsplit(settings.lake_root)
    if url.scheme != "file":
        raise MalformedSetting(f"LAKE_ROOT must be a file:// URL, not {settings.lake_root!r}",
                               name="LAKE_ROOT", expected="file:// URL")
    return unquote(url.path).rstrip("/") or "/"
