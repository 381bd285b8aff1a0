"""SQS (privacy requests) -> run or resume the request; the daily schedule -> count overdue requests.

A request that fails (or a function that times out) is not acknowledged: SQS hands it back after
the visibility timeout and the job resumes from the checkpoints in its record.
"""

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger, Tracer

from cdp.activation.destinations import load_destinations
from cdp.adapters.privacy import build_privacy_stores
from cdp.identity.config import load_identity_config
from cdp.jobs.privacy_job import PrivacyStores, overdue, queued_request_id, run_request
from cdp.observability import metrics, record_overdue
from cdp.segments.catalog import all_segments
from cdp.settings import FUNCTION_FIELDS, Settings

logger = Logger()
tracer = Tracer()  # patches botocore: DynamoDB, S3 and Athena calls are subsegments


@cache
def stores() -> PrivacyStores:
    here = Path(__file__).parent
    segments = [d.name for d in all_segments(here / "segments")]
    settings = Settings.from_env(require=FUNCTION_FIELDS)
    folders = [here / "config" / "destinations", *filter(None, [settings.extra_destinations_dir])]
    return build_privacy_stores(settings, segments=segments,  # type: ignore[no-any-return]
                                config=load_identity_config(here / "config" / "identity.yaml"),
                                destinations=load_destinations(folders, segments=segments))


@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
@logger.inject_lambda_context
def handler(event: dict, context: object) -> dict:
    if "Records" not in event:  # the daily schedule
        late = overdue(stores().privacy, now=datetime.now(UTC))
        record_overdue(len(late))
        logger.info("privacy deadlines", extra={"overdue": late})
        return {"overdue": late}
    failures = []
    for record in event["Records"]:
        request_id = queued_request_id(record["body"])
        try:
            request = run_request(request_id, stores(), now=lambda: datetime.now(UTC))
        except Exception:  # noqa: BLE001 - resumed from its checkpoints when SQS hands it back
            logger.exception("privacy request failed", extra={"request_id": request_id})
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        logger.info("privacy request", extra={"request_id": request_id,
                                              "status": request.status if request else "unknown"})
        if request is not None and request.status == "failed":
            failures.append({"itemIdentifier": record["messageId"]})  # traces remain: SQS runs it again
    return {"batchItemFailures": failures}
