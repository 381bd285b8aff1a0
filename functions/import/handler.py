"""A file under the lake's imports/ prefix (EventBridge "Object Created") -> its rows on the stream."""

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger, Tracer

from cdp.adapters.imports import LambdaContinuation, S3Imports, is_import_key, object_events
from cdp.adapters.kinesis import KinesisSink
from cdp.adapters.quarantine import S3Quarantine
from cdp.identity.config import IdentityConfig, load_identity_config
from cdp.imports.run import DEFAULT_RATE, Pacer
from cdp.jobs.import_job import import_object
from cdp.observability import metrics
from cdp.settings import FUNCTION_FIELDS, Settings

logger = Logger()
tracer = Tracer()  # patches botocore: S3, Kinesis and Lambda calls are subsegments
CONFIG = Path(__file__).parent / "config"
#: Stop starting batches this long before Lambda's limit: the checkpoint and report still get written.
MARGIN_MS = 60_000


@cache
def settings() -> Settings:
    return Settings.from_env(require=FUNCTION_FIELDS)


@cache
def identity_config() -> IdentityConfig:
    return load_identity_config(CONFIG / "identity.yaml")


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    s, results = settings(), []
    for bucket, key in object_events(event):
        if bucket != s.lake_bucket or not is_import_key(key):
            continue
        result = import_object(
            key, objects=S3Imports(s), mappings=CONFIG / "imports", identity=identity_config(),
            sink=KinesisSink(s), quarantine=S3Quarantine(s), now=datetime.now(UTC), pacer=Pacer(DEFAULT_RATE),
            should_stop=lambda: context.get_remaining_time_in_millis() < MARGIN_MS)  # type: ignore[attr-defined]
        if not result.complete:
            LambdaContinuation(s, context.invoked_function_arn)(bucket, key)  # type: ignore[attr-defined]
        summary = result.report.to_dict() if result.report else {"error": result.error}
        logger.info("import", extra={"object": key, **summary})
        results.append({"object": key, **summary})
    return {"imports": results}
