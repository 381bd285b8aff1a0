"""Typed settings, read once from the environment the template sets (see template.yaml Globals)."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields

from cdp.errors import MalformedSetting, MissingSetting

_CONVERT = {"int": int, "float": float}

#: Fields the template does not set (they have working defaults); every other field is a
#: resource name or option that template.yaml gives the functions (see FUNCTION_FIELDS).
TUNING_FIELDS = frozenset({
    "aws_region", "aws_endpoint_url", "aws_endpoint_url_dynamodb", "claim_transaction_min",
    "aws_connect_timeout", "aws_read_timeout", "aws_max_attempts", "collect_max_future_seconds",
    "allow_local_endpoints", "extra_destinations_dir",
    "lake_root", "effect_claim_hold_seconds", "operator_cache_seconds",
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
    # Where the lake's Parquet lives when not in ``lake_bucket``: a ``file://`` directory. Only the
    # local stack sets it (reading many small files through an emulated S3 costs a request each).
    lake_root: str = ""
    activation_queue_url: str = ""
    # Membership changes for the ad audiences and webhooks (their own queue and consumer), and where
    # the deliveries that gave up are kept for ``cdp webhooks replay``.
    destination_queue_url: str = ""
    destination_dead_letter_url: str = ""
    # Secrets of the destinations (tokens, webhook signing secrets) are named <prefix><secret>.
    destination_secret_prefix: str = ""
    # The longest wait before a delivery's next attempt, in seconds: each step of the audiences' and
    # webhooks' backoff schedules is cut to it (a platform's Retry-After still wins). The template's
    # default (10 h, the longest step) cuts nothing; the local fault run shortens it.
    destination_retry_max_delay_seconds: int = 36000
    # What each ad audience was sent, per person (cdp.activation.audiences.holdings).
    audience_holdings_table: str = ""
    # More destination files besides config/destinations: only the local stack sets it (the demo's
    # destinations on loopback fakes, examples/destinations), so a deployed stack ships none of them.
    extra_destinations_dir: str = ""
    # Only the local stack may call http://127.0.0.1 webhook endpoints.
    allow_local_endpoints: str = ""
    # The Kinesis mappings' on-failure queue; unify also announces the records it keeps there.
    failure_queue_url: str = ""
    glue_database: str = ""
    athena_workgroup: str = ""
    query_engine: str = "athena"
    email_sender: str = "cdp@example.com"
    # Privacy requests and the suppression list; the queue of requests to run (erase, export).
    privacy_table: str = ""
    privacy_queue_url: str = ""
    # SES v2 configuration set of campaign emails (its event destination feeds the feedback function).
    ses_configuration_set: str = ""
    # Base URL of the collector's API: campaign emails' one-click unsubscribe links point there.
    unsubscribe_base_url: str = ""
    # Triggered campaigns' waits over 15 minutes: EventBridge Scheduler one-time schedules in this
    # group, which put the trigger on the activation queue (its ARN) as this role.
    trigger_schedule_group: str = ""
    trigger_scheduler_role_arn: str = ""
    activation_queue_arn: str = ""
    # Where a schedule that could not deliver its trigger (after the Scheduler's retries) goes: the
    # activation dead-letter queue, whose alarm fires.
    activation_dead_letter_arn: str = ""
    # The secret holding the key unsubscribe links are signed with (activation) and checked with (collector).
    unsubscribe_secret_arn: str = ""
    # The admin routes' credentials (collector and customer view only): the generated break-glass
    # token in Secrets Manager (its ARN, never the value), and the operators' table (token hashes
    # and scopes, cdp.operators).
    admin_token_secret_arn: str = ""
    operators_table: str = ""
    # Seconds an operator record is kept per warm container: a revocation takes effect within it.
    operator_cache_seconds: float = 60.0
    aws_region: str = "us-east-1"
    # Set only when talking to an emulator (moto server, LocalStack); None on AWS.
    aws_endpoint_url: str | None = None
    # An emulator's DynamoDB where it is served apart (the local stack runs it in a process of its
    # own; botocore's own name for the setting); None: aws_endpoint_url.
    aws_endpoint_url_dynamodb: str | None = None
    # New identifiers of a batch are claimed with single conditional puts up to this many, in a
    # transaction above it (fewer requests on AWS; the local emulator copies whole tables per
    # transaction, so the local stack raises it).
    claim_transaction_min: int = 8
    # Every AWS client (cdp.adapters.aws): seconds to connect and to wait for an answer, and the
    # attempts of botocore's "standard" retry mode (first call included).
    aws_connect_timeout: float = 2.0
    aws_read_timeout: float = 10.0
    aws_max_attempts: int = 3
    # The collector stores an event dated further than this after it was received at the time
    # it was received (the sender's time stays in originalTimestamp).
    collect_max_future_seconds: int = 300
    # Data minimisation at collection (cdp.privacy.minimise; docs/privacy.md): keep, truncate or
    # hash the IP address (with the key in the secret), and traits dropped from every event.
    collect_ip_mode: str = "keep"
    collect_ip_hash_key_secret_arn: str = ""
    collect_drop_traits: str = ""
    # How long a pending claim in the effect ledger is its holder's (cdp.adapters.idempotency): longer
    # than the Timeout of every function that claims, shorter than its queue's VisibilityTimeout x
    # (maxReceiveCount - 1); tests/unit/test_template.py holds the template to both. Only the local
    # fault run, where a failed message returns after 1 s, shortens it (for every function alike).
    effect_claim_hold_seconds: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, require: Collection[str] = ()) -> Settings:
        """Settings from ``env`` (default ``os.environ``); an empty variable counts as unset.

        Every field named in ``require`` must be set, else :class:`MissingSetting` names its variable;
        a number that does not parse raises :class:`MalformedSetting`. Handlers require
        :data:`FUNCTION_FIELDS` so a broken deployment fails at cold start, not at first use; the
        CLI and the local runner require nothing and keep the defaults.
        """
        env = os.environ if env is None else env
        known = {f.name: str(f.type) for f in fields(cls)}
        unknown = set(require) - set(known)
        if unknown:
            raise ValueError(f"not settings fields: {sorted(unknown)}")
        values: dict[str, object] = {}
        for name, kind in known.items():
            raw = env.get(name.upper())
            if raw is None or raw.strip() == "":
                if name in require and not (name == "aws_region" and env.get("AWS_DEFAULT_REGION")):
                    raise MissingSetting(f"environment variable {name.upper()} is not set", name=name.upper())
                continue
            convert = _CONVERT.get(kind)
            if convert is None:
                values[name] = raw
                continue
            try:
                values[name] = convert(raw)
            except ValueError as exc:
                raise MalformedSetting(f"environment variable {name.upper()} is not a valid {kind}: {raw!r}",
                                       name=name.upper(), expected=kind) from exc
        if "aws_region" not in values and env.get("AWS_DEFAULT_REGION"):
            values["aws_region"] = env["AWS_DEFAULT_REGION"]
        return cls(**values)  # type: ignore[arg-type]


#: Fields template.yaml gives the functions serving admin routes only (collector, customer view).
COLLECTOR_FIELDS = frozenset({"admin_token_secret_arn", "operators_table"})

#: Fields template.yaml gives the delivery function only.
DELIVERY_FIELDS = frozenset({"destination_dead_letter_url", "destination_secret_prefix",
                             "destination_retry_max_delay_seconds"})

#: Fields template.yaml gives the collector and the activation function: unsubscribe links.
UNSUBSCRIBE_FIELDS = frozenset({"unsubscribe_secret_arn"})

#: Fields template.yaml gives the activation function only (campaign emails).
ACTIVATION_FIELDS = frozenset({"ses_configuration_set", "unsubscribe_base_url", "trigger_schedule_group",
                               "trigger_scheduler_role_arn", "activation_queue_arn",
                               "activation_dead_letter_arn"}) | UNSUBSCRIBE_FIELDS

#: The collector's minimisation options: template Parameters given to the collector only, each with
#: a default that keeps everything (so not required).
MINIMISE_FIELDS = frozenset({"collect_ip_mode", "collect_ip_hash_key_secret_arn", "collect_drop_traits"})

#: What template.yaml's Globals give every function: a handler requires all of them at cold start.
FUNCTION_FIELDS = (frozenset(f.name for f in fields(Settings)) - TUNING_FIELDS - COLLECTOR_FIELDS
                   - DELIVERY_FIELDS - ACTIVATION_FIELDS - MINIMISE_FIELDS)
