"""Typed settings, read once from the environment the template sets (see template.yaml Globals)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

_CONVERT = {"int": int, "float": float}

#: Fields the template does not set (they have working defaults); every other field is a
#: resource name or option that template.yaml's Globals give every function.
TUNING_FIELDS = frozenset({
    "aws_region", "aws_endpoint_url", "claim_transaction_min",
    "aws_connect_timeout", "aws_read_timeout", "aws_max_attempts",
})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every resource name the code needs. The names exist once, in template.yaml."""

    events_stream: str = ""
    profiles_table: str = ""
    identity_table: str = ""
    merge_log_table: str = ""
    idempotency_table: str = ""
    sources_table: str = ""
    membership_table: str = ""
    lake_bucket: str = ""
    activation_queue_url: str = ""
    glue_database: str = ""
    athena_workgroup: str = ""
    query_engine: str = "athena"
    email_sender: str = "cdp@example.com"
    # The profile API's admin token is in Secrets Manager; only the collector is given its ARN.
    admin_token_secret_arn: str = ""
    aws_region: str = "us-east-1"
    # Set only when talking to an emulator (moto server, LocalStack); None on AWS.
    aws_endpoint_url: str | None = None
    # New identifiers of a batch are claimed with single conditional puts up to this many, in a
    # transaction above it (fewer requests on AWS; the local emulator copies whole tables per
    # transaction, so the local stack raises it).
    claim_transaction_min: int = 8
    # Every AWS client (cdp.adapters.aws): seconds to connect and to wait for an answer, and the
    # attempts of botocore's "standard" retry mode (first call included).
    aws_connect_timeout: float = 2.0
    aws_read_timeout: float = 10.0
    aws_max_attempts: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _CONVERT.get(str(f.type), str)(raw)
        if "aws_region" not in values and env.get("AWS_DEFAULT_REGION"):
            values["aws_region"] = env["AWS_DEFAULT_REGION"]
        return cls(**values)  # type: ignore[arg-type]
