"""The lake's filesystem: S3 through pyarrow (with the emulator's endpoint when one is set)."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from cdp.settings import Settings


@lru_cache(maxsize=4)
def lake_filesystem(settings: Settings) -> pafs.FileSystem:
    """pyarrow's S3 filesystem. pyarrow does not read AWS_ENDPOINT_URL: pass it explicitly.

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
    return settings.lake_bucket
