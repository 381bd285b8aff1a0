"""The local embedded default: the whole stack of template.yaml on one machine.

A moto server on loopback emulates the AWS services; the template's resources are created
on it with the template's names; the Lambda handlers run behind a local API Gateway, Kinesis
and SQS event source mappings and schedules: in this process, and the stream's functions in
processes of their own (``LocalConfig.stream_functions_in_processes``). Nothing needs an AWS account.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from .pollers import KinesisShardPoller, OneTimeSchedules, Scheduler, SesSendEvents, SqsPoller
from .provision import provision
from .runtime import LocalFunction, MetricsRecorder, capture_emf, share_service_models
from .server import AdminRoutes, LocalApi, Route, TokenBucket
from .template import EXAMPLE_DESTINATIONS, Stack, new_stack

log = logging.getLogger("cdp.local")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
}


class EmulatorServer:
    """The AWS emulator (:mod:`cdp_infra.emulator`) in a process of its own, on loopback.

    Its own process, so that moto's work does not hold the handlers' GIL; stopped with the stack.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout_s: float = 60.0) -> EmulatorServer:
        return self.launch().ready(timeout_s)

    def launch(self) -> EmulatorServer:
        """Start the process; :meth:`ready` waits for it to listen (several can start meanwhile)."""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "cdp_infra.emulator", "--host", self.host, "--port", str(self.port)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        return self

    def ready(self, timeout_s: float = 60.0) -> EmulatorServer:
        assert self._process is not None and self._process.stdout is not None
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self._process.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(timeout_s)
        line = ready[0] if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"the AWS emulator did not start: {line.strip() or 'no answer'}")
        _, self.host, port = line.split()
        self.port = int(port)
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def stats(self) -> dict[str, Any]:
        """Requests served per operation ([count, seconds serving, slowest, seconds waiting for the
        service's turn]) and the emulator's RSS."""
        return self._call("GET", "/_local/stats")

    def memory(self) -> dict[str, Any]:
        """RSS and where the emulator's memory grew since the first call (see ``memory_growth``)."""
        return dict(self._call("GET", "/_local/memory"))

    def raw_emails(self) -> list[dict[str, Any]]:
        """The raw emails SES has sent (id, source, destinations, raw_data, tags, configuration_set), in send order."""
        return list(self._call("GET", "/_local/ses/messages")["messages"])

    def trim_kinesis(self, *, account: str, region: str, stream: str, shard: str, through: str) -> int:
        """Forget the shard's records up to sequence number ``through`` (processed by every consumer)."""
        body = {"account": account, "region": region, "stream": stream, "shard": shard, "through": through}
        return int(self._call("POST", "/_local/kinesis/trim", body)["dropped"])

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.host}:{self.port}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        if self._process.stdout:
            self._process.stdout.close()
        self._process = None


#: The GIL's switch interval of the stack's and the emulator's processes (see LocalConfig).
SWITCH_INTERVAL_S = 0.001

_QUEUE_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed")


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
    # Local runs cap the batching windows of the template (60 s for the archive is for AWS costs),
    # and deliver a batch as soon as no record has come for ``batch_quiet_s``: while events keep
    # coming, the archive's batches (one Parquet file per day each) grow towards their BatchSize,
    # as on AWS, and the last batch of a burst does not wait for its window.
    max_batch_window_s: float = 30.0
    batch_quiet_s: float | None = 1.0
    run_schedules: bool = True
    throttle: bool = True
    # The lake's Parquet in this directory (LAKE_ROOT=file://...) instead of the emulated bucket:
    # a segment job reads every small file, and through the emulator each costs a HEAD and a GET.
    # None keeps the lake on the emulator's S3, as on AWS (the end-to-end handler tests do).
    lake_dir: str | Path | None = None
    # Every so many seconds, forget the stream records that every consumer has processed (moto
    # keeps them all, in memory, and scans them on every read).
    trim_interval_s: float = 5.0
    # Settings given to every function (and every execution environment) over the template's.
    environment: dict[str, str] = field(default_factory=dict)
    # How long a thread of the stack's process may hold the GIL while another waits for it
    # (sys.setswitchinterval; Python's default is 5 ms). The functions share one process here, where
    # on Lambda each has its own: a profile read returning from a socket waited up to this long,
    # at each of its calls, behind unify's or the archive's Python. None leaves Python's default.
    switch_interval_s: float | None = SWITCH_INTERVAL_S
    # Publish SES's Send event of every email to the feedback function as it is sent (AWS does; the
    # feedback function confirms the email's ledger claim). Off by default: the demo plays the
    # mailbox provider at its end instead, and its checks count the outcome events it publishes.
    ses_send_events: bool = False
    # Each execution environment of the functions on the events stream (unify, archive) in a process
    # of its own, as each is a sandbox of its own on Lambda: the stream's work then does not wait
    # for the GIL of the stack's process, where the collector, the API and the queues' functions
    # run. False keeps them in this process, where a fault run's injector reaches their AWS calls.
    stream_functions_in_processes: bool = True


class LocalPipeline:
    def __init__(self, config: LocalConfig | None = None) -> None:
        self.config = config or LocalConfig()
        self.stack: Stack | None = None
        self.functions: dict[str, LocalFunction] = {}
        self.api: LocalApi | None = None
        self.kinesis_pollers: list[KinesisShardPoller] = []
        self.sqs_pollers: list[SqsPoller] = []
        self.scheduler: Scheduler | None = None
        self.one_time: OneTimeSchedules | None = None
        self.ses_events: SesSendEvents | None = None
        self.endpoint_url = ""
        self.dynamodb_url = ""  # DynamoDB's emulator: a process of its own (see start)
        # The profile API's token: generated with the stack's secret, or the one the config gives.
        self.admin_token = ""
        self._moto: Any = None
        self._dynamodb: EmulatorServer | None = None
        self._saved_env: dict[str, str | None] = {}
        # What the functions' Powertools metrics would publish on AWS (GET /v1/metrics, admin token).
        self.metrics = MetricsRecorder()
        self._stopping = threading.Event()
        self._trimmer: threading.Thread | None = None
        self._switch_interval: float | None = None

    # ------------------------------------------------------------------ start / stop
    def start(self) -> LocalPipeline:
        cfg = self.config
        if cfg.switch_interval_s is not None:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(cfg.switch_interval_s)
        # DynamoDB in an emulator process of its own: unify's requests (most of its time) no longer
        # wait for the GIL behind the stream's, the queues' and S3's in the other.
        self._moto, self._dynamodb = EmulatorServer().launch(), EmulatorServer().launch()
        self._moto.ready()
        self._dynamodb.ready()
        self.endpoint_url = f"http://{self._moto.host}:{self._moto.port}"
        self.dynamodb_url = f"http://{self._dynamodb.host}:{self._dynamodb.port}"
        self._set_env({**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": cfg.region,
                       "AWS_ENDPOINT_URL": self.endpoint_url, "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url})
        stack = provision(new_stack(cfg.stack_name, region=cfg.region), self.session(), self.endpoint_url,
                          service_endpoints={"dynamodb": self.dynamodb_url})
        self.stack = stack
        specs = stack.functions()
        env: dict[str, str] = {}
        for spec in specs.values():
            env.update(spec.environment)
        env["QUERY_ENGINE"] = "duckdb"  # Athena does not run SQL here: DuckDB reads the same lake
        env["POWERTOOLS_TRACE_DISABLED"] = "1"
        # Webhooks and ad-platform fakes on 127.0.0.1 are allowed here only (never on AWS).
        env["ALLOW_LOCAL_ENDPOINTS"] = "1"
        # The demo's destinations (on those fakes) are loaded here only: a deployed stack ships none.
        env["EXTRA_DESTINATIONS_DIR"] = str(EXAMPLE_DESTINATIONS)
        # The template samples DEBUG logs in 1% of invocations; here that would print stray lines
        # into the terminal of `cdp demo` at random.
        env["POWERTOOLS_LOGGER_SAMPLE_RATE"] = "0"
        # The emulator serves one request at a time, and moto takes seconds for a page of a Scan
        # (1,000 profiles: ~3 s on a busy machine): AWS's 10 s read timeout would fail the demo's
        # counts and the segment job's snapshots when the machine is loaded.
        env["AWS_READ_TIMEOUT"] = os.environ.get("AWS_READ_TIMEOUT") or "60"
        if cfg.lake_dir is not None:
            lake = Path(cfg.lake_dir).resolve()
            lake.mkdir(parents=True, exist_ok=True)
            env["LAKE_ROOT"] = lake.as_uri()
        env.update(cfg.environment)
        self._set_env(env)
        capture_emf()
        share_service_models()
        self.admin_token = self._admin_token(env.get("ADMIN_TOKEN_SECRET_ARN", ""), cfg.admin_token)
        self.functions = {lid: LocalFunction(spec, stack.refs[lid], stack.region, stack.account_id, self.metrics,
                                             own_process=cfg.stream_functions_in_processes and any(
                                                 e["Type"] == "Kinesis" for e in spec.events.values()))
                          for lid, spec in specs.items()}
        if cfg.write_key:
            self.register_write_key("local", cfg.write_key)
        self._start_api()
        # Campaign emails' unsubscribe links point at this collector (the template's URL is API Gateway's).
        self._set_env({"UNSUBSCRIBE_BASE_URL": self.url})
        for function in self.functions.values():
            if function.own_process:  # started with the stack (its settings set): no cold start in the first batch
                function.prewarm()
        self._start_event_sources()
        if cfg.trim_interval_s > 0:
            self._trimmer = threading.Thread(target=self._trim_loop, daemon=True, name="kinesis-trim")
            self._trimmer.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.scheduler:
            self.scheduler.stop()
        if self.one_time:
            self.one_time.stop()
        if self.ses_events:
            self.ses_events.stop()
        for poller in [*self.kinesis_pollers, *self.sqs_pollers]:
            poller.stop()
        for function in self.functions.values():
            function.stop()
        if self.api:
            self.api.stop()
        for emulator in (self._moto, self._dynamodb):
            if emulator:
                emulator.stop()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None
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

    def admin_access(self) -> Any:
        """How the local API's own routes check a token, as the functions do (operators, break-glass)."""
        from cdp.adapters.operators import DynamoOperatorStore
        from cdp.collect.profiles import AdminAccess

        return AdminAccess(DynamoOperatorStore(self.settings), self.admin_token)

    def add_operator(self, name: str, scopes: list[str]) -> str:
        """A new operator of this stack with ``scopes``; its token (as `cdp operators add` prints it)."""
        from cdp.adapters.operators import DynamoOperatorStore

        return DynamoOperatorStore(self.settings).add(name, scopes)[1]

    def session(self) -> boto3.Session:
        return boto3.Session(region_name=self.config.region, aws_access_key_id="local",
                             aws_secret_access_key="local", aws_session_token="local")

    def client(self, service: str) -> Any:
        return self.session().client(service, endpoint_url=self.endpoint_for(service))

    def endpoint_for(self, service: str) -> str:
        return self.dynamodb_url if service == "dynamodb" and self.dynamodb_url else self.endpoint_url

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
                            throttle=throttle, admin=AdminRoutes(self.admin_access(), self.metrics_view,
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
                            max_window_s=self.config.max_batch_window_s, quiet_s=self.config.batch_quiet_s,
                            region=self.stack.region).start())
                elif event["Type"] == "SQS":
                    self.sqs_pollers.append(SqsPoller(
                        self.client("sqs"), function, event, queue_url=self._queue_url_for_arn(event["Queue"]),
                        queue_arn=event["Queue"], region=self.stack.region).start())
                elif event["Type"] == "Schedule":
                    jobs.append((function, f"{self.stack.stack_name}-{lid}-{name}", event["Schedule"]))
        self.scheduler = Scheduler(jobs, self.stack.region, self.stack.account_id)
        if self.config.run_schedules:
            self.scheduler.start()
        # One-time schedules the functions create (triggered campaigns' long waits) always run, as on AWS.
        groups = [self.stack.refs[lid] for lid, r in self.stack.resources.items()
                  if r["Type"] == "AWS::Scheduler::ScheduleGroup"]
        self.one_time = OneTimeSchedules(self.client("scheduler"), self.client("sqs"), groups,
                                         self._queue_url_for_arn).start()
        if self.config.ses_send_events:
            subscribed = [f for f in self.functions.values()
                          if any(e["Type"] == "SNS" for e in f.spec.events.values())]
            self.ses_events = SesSendEvents(self.raw_emails, subscribed,
                                            os.environ.get("SES_CONFIGURATION_SET", "")).start()

    def trim_streams(self) -> int:
        """Forget the stream records every consumer of their shard has processed; how many.

        Records a consumer sent to its on-failure destination count as processed, but the pointer
        left there names them: ``cdp failures replay`` reads them back from the stream, which keeps
        them for its retention on AWS (``StreamRetentionHours``). So a shard is trimmed only up to
        the first record of a pointer younger than that.
        """
        assert self.stack is not None and self._moto is not None
        retention_s = float(self.stack.parameters.get("StreamRetentionHours") or 24) * 3600
        now = time.monotonic()
        shards: dict[tuple[str, str], list[KinesisShardPoller]] = {}
        for p in self.kinesis_pollers:
            shards.setdefault((p.stream_name, p.shard_id), []).append(p)
        dropped = 0
        for (stream, shard), pollers in shards.items():
            checkpoints = [p.checkpoint for p in pollers]
            if any(c is None for c in checkpoints):
                continue
            through = int(min(checkpoints, key=int))  # type: ignore[arg-type]
            for p in pollers:
                # Removed one by one: the poller's thread may be appending meanwhile.
                for expired in [pin for pin in list(p.pointed_to) if now - pin[1] >= retention_s]:
                    p.pointed_to.remove(expired)
                through = min([through, *(int(first) - 1 for first, _ in list(p.pointed_to))])
            dropped += self._moto.trim_kinesis(account=self.stack.account_id, region=self.stack.region,
                                               stream=stream, shard=shard, through=str(through))
        return dropped

    def _trim_loop(self) -> None:
        while not self._stopping.wait(self.config.trim_interval_s):
            try:
                self.trim_streams()
            except Exception:  # the stack keeps running; the next round tries again
                log.warning("trimming the streams failed", exc_info=True)

    @property
    def _emulators(self) -> list[EmulatorServer]:
        return [e for e in (self._moto, self._dynamodb) if e is not None]

    def emulator_stats(self) -> dict[str, Any]:
        """The emulators' requests per operation and their RSS (see :mod:`cdp_infra.emulator`), summed."""
        total: dict[str, Any] = {"rss_bytes": 0, "calls": {}, "held": {}}
        for emulator in self._emulators:
            stats = emulator.stats()
            total["rss_bytes"] += stats["rss_bytes"]
            total["held"].update(stats["held"])
            for operation, (count, seconds, slowest, waited) in stats["calls"].items():
                mine = total["calls"].setdefault(operation, [0, 0.0, 0.0, 0.0])
                mine[0] += count
                mine[1] += seconds
                mine[2] = max(mine[2], slowest)
                mine[3] += waited
        return total

    def emulator_memory(self) -> dict[str, Any]:
        """The emulators' RSS and where their memory grew since the first call (tracemalloc on), largest first."""
        answers = [emulator.memory() for emulator in self._emulators]
        return {"rss_bytes": sum(a["rss_bytes"] for a in answers),
                "top": sorted((t for a in answers for t in a["top"]), key=lambda t: -abs(t["bytes"]))}

    def raw_emails(self) -> list[dict[str, Any]]:
        """The raw emails SES has sent (campaign emails), as the emulator holds them, in send order."""
        assert self._moto is not None
        return self._moto.raw_emails()

    @property
    def emulator_pid(self) -> int | None:
        return self._moto.pid if self._moto else None

    @property
    def emulator_pids(self) -> list[int]:
        """Both emulators' processes (DynamoDB's apart)."""
        return [e.pid for e in self._emulators if e.pid is not None]

    @property
    def worker_pids(self) -> list[int]:
        """The processes of the execution environments that run in their own (the stream's functions)."""
        return [pid for function in self.functions.values() for pid in function.pids]

    # ------------------------------------------------------------------ operations
    @property
    def idle(self) -> bool:
        return all(p.idle for p in self.kinesis_pollers) and all(p.idle for p in self.sqs_pollers)

    def wait_drained(self, timeout_s: float = 600.0, *, report: Callable[[str], None] | None = None,
                     report_every_s: float = 60.0) -> None:
        """Block until every stream consumer is caught up and every queue is empty (delayed messages too).

        Drained means: every poller found its source empty by a read issued after the check began,
        and no poller did any work meanwhile (work may put records where another already looked).
        A read still in flight when the last records arrived does not count. Every ``report_every_s``
        seconds ``report`` (if given) is told what is still waited for (:meth:`waiting_on`); so is
        the :class:`DrainTimeout`.
        """
        start = time.monotonic()
        deadline, next_report = start + timeout_s, start + report_every_s
        pollers: list[Any] = [*self.kinesis_pollers, *self.sqs_pollers]
        while True:
            since = time.monotonic()
            done = [p.done for p in pollers]
            while not all(p.idle_since(since) for p in pollers):
                now = time.monotonic()
                if now > deadline:
                    raise DrainTimeout(f"pipeline not drained after {timeout_s:.0f}s, waiting on: "
                                       + "; ".join(self.waiting_on()))
                if report is not None and now > next_report:
                    report(f"drain: {now - start:.0f}s, waiting on: {'; '.join(self.waiting_on()) or 'a last check'}")
                    next_report = now + report_every_s
                time.sleep(0.1)
            if [p.done for p in pollers] == done:
                return

    def waiting_on(self) -> list[str]:
        """What a drain is waiting for: each stream consumer not caught up, each queue not empty, with
        its messages visible, in flight and delayed (a delivery's backoff, a deferred campaign message)."""
        out = [f"{p.function.spec.logical_id} {p.shard_id}: {'behind' if not p.caught_up else 'records in hand'}"
               for p in self.kinesis_pollers if not p.idle]
        for p in self.sqs_pollers:
            try:
                attrs = p.sqs.get_queue_attributes(QueueUrl=p.queue_url, AttributeNames=list(_QUEUE_COUNTS))["Attributes"]
            except Exception as exc:  # noqa: BLE001 - a diagnosis only
                out.append(f"{p.function.spec.logical_id} queue: {type(exc).__name__}")
                continue
            visible, in_flight, delayed = (int(attrs.get(name, 0)) for name in _QUEUE_COUNTS)
            if visible or in_flight or delayed or p.in_flight:
                out.append(f"{p.function.spec.logical_id} queue: {visible} visible, {in_flight} in flight, "
                           f"{delayed} delayed")
        return out

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
