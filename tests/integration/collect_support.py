"""Helpers for the collector's tests: load the Chalice app, build proxy events, read the stream."""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3

from cdp.settings import Settings

APP_FILE = Path(__file__).resolve().parents[2] / "functions" / "collect" / "app.py"
WRITE_KEY = "wk_integration_0123456789"
ADMIN_TOKEN = "admin-token-for-tests-0000"


def load_app(name: str = "cdp_test_collect_app") -> ModuleType:
    """A fresh copy of ``functions/collect/app.py`` (as on a cold start)."""
    spec = importlib.util.spec_from_file_location(name, APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def basic(write_key: str = WRITE_KEY) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def proxy_event(
    path: str,
    *,
    method: str = "POST",
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    headers: dict[str, str] | None = None,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
    source_ip: str = "198.51.100.7",
) -> dict[str, Any]:
    """An API Gateway REST proxy event as API Gateway sends it with BinaryMediaTypes ``*/*``."""
    if isinstance(body, dict | list):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    headers = {"Content-Type": "application/json", **(headers or {})}
    resource = resource or path
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/v1api{path}",
            "stage": "v1api",
            "identity": {"sourceIp": source_ip},
            "requestTimeEpoch": 1714564800000,
        },
        "body": base64.b64encode(body).decode("ascii") if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def response_json(response: dict[str, Any]) -> Any:
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body)
    return json.loads(body)


def stream_events(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    """Every record on the events stream as ``(partition_key, event)``, shard by shard."""
    kinesis = boto3.client("kinesis", region_name=settings.aws_region)
    found: list[tuple[str, dict[str, Any]]] = []
    for shard in kinesis.list_shards(StreamName=settings.events_stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=settings.events_stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            found.extend((r["PartitionKey"], json.loads(r["Data"])) for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return found


def quarantine_lines(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    """Every quarantined line as ``(object key, record)``."""
    s3 = boto3.client("s3", region_name=settings.aws_region)
    lines: list[tuple[str, dict[str, Any]]] = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=settings.lake_bucket, Prefix="quarantine/"
    ):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=settings.lake_bucket, Key=obj["Key"])["Body"].read().decode("utf-8")
            lines.extend((obj["Key"], json.loads(line)) for line in body.split("\n") if line)
    return lines


# ---------------------------------------------------------------- the published contract

SPEC_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def load_spec() -> dict[str, Any]:
    import yaml

    with SPEC_FILE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _inline(spec: dict[str, Any], node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = spec
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _inline(spec, target)
        return {k: _inline(spec, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(spec, v) for v in node]
    return node


def check_against_spec(spec: dict[str, Any], resource: str, method: str, response: dict[str, Any]) -> None:
    """Raise AssertionError unless ``response`` is one the spec documents for ``method resource``."""
    from openapi_schema_validator import OAS30Validator, validate

    operation = spec["paths"][resource][method.lower()]
    status = str(response["statusCode"])
    assert status in operation["responses"], f"{method} {resource} answered {status}, not in the spec"
    documented = _inline(spec, operation["responses"][status])
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name in documented.get("headers", {}):
        assert name.lower() in headers, f"{method} {resource} {status} lacks header {name}"
    content = documented.get("content")
    if not content:
        return
    content_type = headers.get("content-type", "application/json").split(";")[0].strip()
    assert content_type in content, f"{method} {resource} {status} answered {content_type}"
    if content_type == "application/json":
        validate(response_json(response), content[content_type]["schema"], cls=OAS30Validator)


def event_reasons(spec: dict[str, Any]) -> set[str]:
    return set(spec["components"]["schemas"]["EventReason"]["enum"])


def request_reasons(spec: dict[str, Any]) -> set[str]:
    return set(spec["components"]["schemas"]["RequestReason"]["enum"])


# ---------------------------------------------------------------- a real HTTP server


class AppFunction:
    """What the local API server needs of a function: an account id and ``invoke(event)``."""

    account_id = "123456789012"

    def __init__(self, module: ModuleType) -> None:
        self.module = module

    def invoke(self, event: dict[str, Any]) -> Any:
        return self.module.app(event, None)


def serve_collector(module: ModuleType, throttle: Any = None) -> Any:
    """The collector behind the runner's local API Gateway on a free port (call ``.stop()``)."""
    from cdp_infra.server import LocalApi, Route
    from cdp_infra.template import load_template

    function = AppFunction(module)
    events = load_template()["Resources"]["CollectFunction"]["Properties"]["Events"].values()
    routes = [
        Route(method=e["Properties"]["Method"].upper(), resource=e["Properties"]["Path"], function=function)  # type: ignore[arg-type]
        for e in events
        if e["Type"] == "Api"
    ]
    return LocalApi(routes, throttle=throttle).start()


def interim_then_final(host: str, port: int, method: str, path: str, body: bytes,
                       headers: dict[str, str] | None = None) -> tuple[bytes, bytes]:
    """Send a request as a client that waits for ``100 Continue`` before its body (as S3 uploads
    do): the interim answer's status line, then the final answer's (a socket timeout fails it)."""
    import socket

    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", "Content-Length": str(len(body)),
                                                 "Expect": "100-continue", **(headers or {})}.items())
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode())
        reader = sock.makefile("rb")
        interim = reader.readline().strip()
        while reader.readline().strip():  # the interim answer's (empty) headers
            pass
        sock.sendall(body)
        return interim, reader.readline().strip()
