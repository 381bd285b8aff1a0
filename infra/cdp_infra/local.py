"""The local embedded default: the whole stack of template.yaml on one machine.

A moto server on loopback emulates the AWS services; the template's resources are created
on it with the template's names; the Lambda handlers run in-process behind a local API
Gateway, Kinesis and SQS event source mappings and schedules. Nothing needs an AWS account.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3

from .pollers import KinesisShardPoller, Scheduler, SqsPoller
from .provision import provision
from .runtime import LocalFunction, MetricsRecorder, capture_emf
from .server import AdminRoutes, LocalApi, Route, TokenBucket
from .template import Stack, new_stack

log = logging.getLogger("cdp.local")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}


class EmulatorServer:
    """moto in server mode, in this process, on loopback, answering one request at a time.

    moto's backends are not thread-safe (a TransactWriteItems copies tables that a concurrent
    request may be changing), so requests are serialised; under the GIL they would mostly be anyway.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()
        # (operation) -> [requests, seconds]: what the pipeline asks of AWS, for benchmarks.
        self.calls: dict[str, list[float]] = {}

        def serialised(environ: dict[str, Any], start_response: Any) -> Any:
            with lock:
                started = time.perf_counter()
                body = list(app(environ, start_response))
                stat = self.calls.setdefault(_operation(environ), [0, 0.0])
                stat[0] += 1
                stat[1] += time.perf_counter() - started
                return body

        self._server = make_server(host, port, serialised, threaded=True, request_handler=MotoRequestHandler)
        self.host, self.port = str(self._server.server_address[0]), int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)

    def start(self) -> EmulatorServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _operation(environ: dict[str, Any]) -> str:
    """``DynamoDB_20120810.PutItem`` style name of a request (S3: method and first path part)."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target)
    query = environ.get("QUERY_STRING", "")
    for part in query.split("&"):
        if part.startswith("Action="):
            return f"Query.{part[7:]}"
    path = environ.get("PATH_INFO", "/")
    return f"{environ.get('REQUEST_METHOD')} {'/'.join(path.split('/')[:3])}"


class DrainTimeout(Exception):
    """The pipeline did not drain within the time allowed."""


@dataclass
class LocalConfig:
    port: int = 0
    host: str = "127.0.0.1"
    write_key: str | None = None
    # None: the stack's secret keeps the value generated for this run.
    admin_token: str | None = None
    stack_name: str = "cdp-local"
    region: str = "us-east-1"
    # Local runs cap the batching windows of the template (60 s for the archive is for AWS costs).
    max_batch_window_s: float = 1.0
    run_schedules: bool = True
    throttle: bool = True


class LocalPipeline:
    def __init__(self, config: LocalConfig | None = None) -> None:
        self.config = config or LocalConfig()
        self.stack: Stack | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.api: LocalApi | None = None
        self.kinesis_pollers: list[KinesisShardPoller] = []
        self.sqs_pollers: list[SqsPoller] = []
        self.scheduler: Scheduler | None = None
        self.endpoint_url = ""
        # The profile API's token: generated with the stack's secret, or the one the config gives.
        self.admin_token = ""
        self._moto: Any = None
        self._saved_env: dict[str, str | None] = {}
        # What the functions' Powertools metrics would publish on AWS (GET /v1/metrics, admin token).
        self.metrics = MetricsRecorder()

    # ------------------------------------------------------------------ start / stop
    def start(self) -> LocalPipeline:
        cfg = self.config
        self._moto = EmulatorServer().start()
        host, port = self._moto.host, self._moto.port
        self.endpoint_url = f"http://{host}:{port}"
        # moto's state is per process: start from an empty account even if another stack ran here.
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST"),
                               timeout=30).read()
        self._set_env({**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": cfg.region,
                       "AWS_ENDPOINT_URL": self.endpoint_url})
        stack = provision(new_stack(cfg.stack_name, region=cfg.region), self.session(), self.endpoint_url)
        self.stack = stack
        specs = stack.functions()
        env: dict[str, str] = {}
        for spec in specs.values():
            env.update(spec.environment)
        env["QUERY_ENGINE"] = "duckdb"  # Athena does not run SQL here: DuckDB reads the same lake
        # moto copies whole tables for each transaction: claim new identifiers with single puts.
        env["CLAIM_TRANSACTION_MIN"] = "100"
        env["POWERTOOLS_TRACE_DISABLED"] = "1"
        # Webhooks and ad-platform fakes on 127.0.0.1 are allowed here only (never on AWS).
        env["ALLOW_LOCAL_ENDPOINTS"] = "1"
        self._set_env(env)
        capture_emf()
        self.admin_token = self._admin_token(env.get("ADMIN_TOKEN_SECRET_ARN", ""), cfg.admin_token)
        self.functions = {lid: LocalFunction(spec, stack.refs[lid], stack.region, stack.account_id, self.metrics)
                          for lid, spec in specs.items()}
        if cfg.write_key:
            self.register_write_key("local", cfg.write_key)
        self._start_api()
        # Campaign emails' unsubscribe links point at this collector (the template's URL is API Gateway's).
        self._set_env({"UNSUBSCRIBE_BASE_URL": self.url})
        self._start_event_sources()
        return self

    def stop(self) -> None:
        if self.scheduler:
            self.scheduler.stop()
        for poller in [*self.kinesis_pollers, *self.sqs_pollers]:
            poller.stop()
        if self.api:
            self.api.stop()
        if self._moto:
            self._moto.stop()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def __enter__(self) -> LocalPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ pieces
    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value

    def _admin_token(self, secret_arn: str, given: str | None) -> str:
        if not secret_arn:
            return ""
        secrets = self.client("secretsmanager")
        if given:
            secrets.put_secret_value(SecretId=secret_arn, SecretString=given)
        return str(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])

    def session(self) -> boto3.Session:
        return boto3.Session(region_name=self.config.region, aws_access_key_id="local",
                             aws_secret_access_key="local", aws_session_token="local")

    def client(self, service: str) -> Any:
        return self.session().client(service, endpoint_url=self.endpoint_url)

    @property
    def settings(self) -> Any:
        from cdp.settings import Settings

        return Settings.from_env()

    @property
    def url(self) -> str:
        assert self.api is not None
        return self.api.url

    def register_write_key(self, name: str, write_key: str) -> None:
        from cdp.adapters.sources import DynamoSourceStore

        DynamoSourceStore(self.settings).register_write_key(name, write_key)

    def _start_api(self) -> None:
        assert self.stack is not None
        routes = []
        for function in self.functions.values():
            for event in function.spec.events.values():
                if event["Type"] == "Api":
                    routes.append(Route(method=event["Method"].upper(), resource=event["Path"], function=function))
        apis = self.stack.of_type("AWS::Serverless::Api")
        throttle = None
        stage = "v1api"
        if apis:
            lid = next(iter(apis))
            props = self.stack.properties(lid)
            stage = props.get("StageName", stage)
            settings = (props.get("MethodSettings") or [{}])[0]
            if self.config.throttle and "ThrottlingRateLimit" in settings:
                throttle = TokenBucket(float(settings["ThrottlingRateLimit"]),
                                       float(settings.get("ThrottlingBurstLimit", settings["ThrottlingRateLimit"])))
        # Longest literal prefix first, so /v1/profiles/{id}/explain wins over /v1/profiles/{id}.
        routes.sort(key=lambda r: (-len(r.resource.split("{")[0]), r.resource))
        self.api = LocalApi(routes, host=self.config.host, port=self.config.port, stage=stage,
                            throttle=throttle, admin=AdminRoutes(self.admin_token, self.metrics_view,
                                               pages={"/v1/reports/latest": self.latest_report})).start()

    def _queue_url_for_arn(self, arn: str) -> str:
        assert self.stack is not None
        for attrs in self.stack.attrs.values():
            if attrs.get("Arn") == arn and "QueueUrl" in attrs:
                return attrs["QueueUrl"]
        raise KeyError(arn)

    def _start_event_sources(self) -> None:
        assert self.stack is not None
        kinesis, sqs = self.client("kinesis"), self.client("sqs")
        jobs = []
        for lid, function in self.functions.items():
            for name, event in function.spec.events.items():
                if event["Type"] == "Kinesis":
                    stream_arn = event["Stream"]
                    stream_name = stream_arn.rsplit("/", 1)[1]
                    failure = (event.get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
                    failure_url = self._queue_url_for_arn(failure) if failure else None
                    shards = kinesis.list_shards(StreamName=stream_name)["Shards"]
                    for shard in shards:
                        self.kinesis_pollers.append(KinesisShardPoller(
                            self.client("kinesis"), sqs, function, event, stream_name=stream_name,
                            stream_arn=stream_arn, shard_id=shard["ShardId"], failure_queue_url=failure_url,
                            max_window_s=self.config.max_batch_window_s, region=self.stack.region).start())
                elif event["Type"] == "SQS":
                    self.sqs_pollers.append(SqsPoller(
                        self.client("sqs"), function, event, queue_url=self._queue_url_for_arn(event["Queue"]),
                        queue_arn=event["Queue"], region=self.stack.region).start())
                elif event["Type"] == "Schedule":
                    jobs.append((function, f"{self.stack.stack_name}-{lid}-{name}", event["Schedule"]))
        self.scheduler = Scheduler(jobs, self.stack.region, self.stack.account_id)
        if self.config.run_schedules:
            self.scheduler.start()

    # ------------------------------------------------------------------ operations
    @property
    def idle(self) -> bool:
        return all(p.idle for p in self.kinesis_pollers) and all(p.idle for p in self.sqs_pollers)

    def wait_drained(self, timeout_s: float = 600.0, *, stable_checks: int = 3) -> None:
        """Block until every stream consumer is caught up and every queue is empty."""
        deadline = time.monotonic() + timeout_s
        stable = 0
        while stable < stable_checks:
            if time.monotonic() > deadline:
                raise DrainTimeout(f"pipeline not drained after {timeout_s:.0f}s")
            stable = stable + 1 if self.idle else 0
            time.sleep(0.3)

    def run_schedules(self, function: str | None = None, at: datetime | None = None) -> list[Any]:
        """Fire the scheduled rules (of one function, by logical id) once, now, as EventBridge would."""
        assert self.scheduler is not None
        return [self.scheduler.fire(fn, rule, at) for fn, rule, _ in self.scheduler.jobs
                if function is None or fn.spec.logical_id == function]

    def latest_report(self) -> bytes | None:
        from .report_cli import latest_dashboard

        return latest_dashboard(self.settings)

    def metrics_view(self) -> dict[str, Any]:
        """The metrics the functions flushed so far, summed per function (served at GET /v1/metrics)."""
        env = self.stack.functions() if self.stack else {}
        namespace = next((s.environment.get("POWERTOOLS_METRICS_NAMESPACE") for s in env.values()), None)
        return {"namespace": namespace, "functions": self.metrics.snapshot(), "totals": self.metrics.totals()}

    def stream_consumers_processed(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for p in self.kinesis_pollers:
            totals[p.function.spec.logical_id] = totals.get(p.function.spec.logical_id, 0) + p.processed
        return totals


@contextmanager
def running(config: LocalConfig | None = None) -> Iterator[LocalPipeline]:
    pipeline = LocalPipeline(config)
    try:
        yield pipeline.start()
    finally:
        pipeline.stop()
