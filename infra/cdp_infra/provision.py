"""Creates the template's resources on an AWS-compatible endpoint (moto server locally).

Resources are created in dependency order: a resource whose properties refer to one not
yet created waits for the next pass. Lambda functions, layers, the API and log groups are
not created: the local runner invokes the handlers in-process instead. Neither are IAM roles
nor the bucket policy: the emulator does not enforce them (and is served over plain HTTP on
loopback, which the bucket policy would refuse).
Alarms, their topic and the dashboard are not created either (see ``_MONITORING``).
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from .template import Stack, TemplateError

_SKIPPED = {
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::Serverless::Api": None,
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::S3::BucketPolicy": None,
    # SES publishes no events locally: tests and the demo invoke the feedback function themselves.
    "AWS::SNS::TopicPolicy": None,
    "AWS::SES::ConfigurationSetEventDestination": None,
}
# Monitoring that exists only on AWS: skipped without evaluating their properties, which may use
# intrinsics the local runner does not (``!Ref Api.Stage``, conditions). Locally, metrics are
# captured from the functions' output instead (``runtime.MetricsRecorder``).
_MONITORING = {"AWS::SNS::Topic", "AWS::SNS::Subscription", "AWS::CloudWatch::Alarm", "AWS::CloudWatch::Dashboard",
               "AWS::XRay::SamplingRule"}


def provision(stack: Stack, session: boto3.Session | None = None, endpoint_url: str | None = None, *,
              service_endpoints: Mapping[str, str] | None = None) -> Stack:
    """Create every resource of ``stack`` and fill its refs and attributes. Returns ``stack``.

    ``service_endpoints``: a service's own endpoint where it is served apart (else ``endpoint_url``)."""
    session = session or boto3.Session(region_name=stack.region)

    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, region_name=stack.region,
                                              endpoint_url=(service_endpoints or {}).get(service, endpoint_url))
        return clients[service]

    creators: dict[str, Callable[[str, dict[str, Any]], None]] = {
        "AWS::Kinesis::Stream": lambda lid, p: _stream(stack, client("kinesis"), lid, p),
        "AWS::DynamoDB::Table": lambda lid, p: _table(stack, client("dynamodb"), lid, p),
        "AWS::S3::Bucket": lambda lid, p: _bucket(stack, client("s3"), lid, p),
        "AWS::SQS::Queue": lambda lid, p: _queue(stack, client("sqs"), lid, p),
        "AWS::Glue::Database": lambda lid, p: _glue_database(stack, client("glue"), lid, p),
        "AWS::Glue::Table": lambda lid, p: _glue_table(client("glue"), p),
        "AWS::Athena::WorkGroup": lambda lid, p: _workgroup(stack, client("athena"), lid, p),
        "AWS::SES::EmailIdentity": lambda lid, p: _email_identity(stack, client("ses"), lid, p),
        "AWS::SES::ConfigurationSet": lambda lid, p: _configuration_set(stack, client("sesv2"), lid, p),
        "AWS::KMS::Key": lambda lid, p: _kms_key(stack, client("kms"), lid, p),
        "AWS::KMS::Alias": lambda lid, p: _kms_alias(stack, client("kms"), lid, p),
        "AWS::SecretsManager::Secret": lambda lid, p: _secret(stack, client("secretsmanager"), lid, p),
        "AWS::Scheduler::ScheduleGroup": lambda lid, p: _schedule_group(stack, client("scheduler"), lid, p),
    }
    pending = dict(stack.resources)
    while pending:
        progressed = False
        for logical, resource in list(pending.items()):
            rtype = resource["Type"]
            if rtype in _MONITORING:
                stack.refs[logical] = stack.attrs.setdefault(logical, {})["Arn"] = _arn(stack, "local", logical)
                del pending[logical]
                progressed = True
                continue
            try:
                props = stack.properties(logical)
            except TemplateError:
                continue
            if rtype in creators:
                creators[rtype](logical, props)
            elif rtype in _SKIPPED:
                name_key = _SKIPPED[rtype]
                stack.refs[logical] = props.get(name_key, logical) if name_key else logical
                stack.attrs[logical] = {"Arn": f"arn:aws:local:{stack.region}:{stack.account_id}:{logical}"}
            else:
                raise TemplateError(f"resource type {rtype} ({logical}) is not supported locally")
            del pending[logical]
            progressed = True
        if not progressed:
            raise TemplateError(f"cannot resolve the references of {sorted(pending)}")
    return stack


def _arn(stack: Stack, service: str, resource: str) -> str:
    return f"arn:aws:{service}:{stack.region}:{stack.account_id}:{resource}"


def _stream(stack: Stack, kinesis: Any, logical: str, p: dict[str, Any]) -> None:
    name = p["Name"]
    kinesis.create_stream(StreamName=name, ShardCount=int(p.get("ShardCount", 1)))
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.1})
    stack.refs[logical] = name
    stack.attrs[logical] = {"Arn": _arn(stack, "kinesis", f"stream/{name}")}


def _table(stack: Stack, dynamodb: Any, logical: str, p: dict[str, Any]) -> None:
    name = p["TableName"]
    kwargs: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": p["AttributeDefinitions"],
        "KeySchema": p["KeySchema"],
        "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if p.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = p["GlobalSecondaryIndexes"]
    if p.get("StreamSpecification"):
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
    dynamodb.create_table(**kwargs)
    ttl = p.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    stack.refs[logical] = name
    stack.attrs[logical] = {"Arn": _arn(stack, "dynamodb", f"table/{name}")}


def _bucket(stack: Stack, s3: Any, logical: str, p: dict[str, Any]) -> None:
    name = p["BucketName"]
    if stack.region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": stack.region})
    if (p.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
        # Overwritten and deleted objects leave noncurrent versions, as on AWS: erasure must reach them.
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    stack.refs[logical] = name
    stack.attrs[logical] = {"Arn": f"arn:aws:s3:::{name}"}


def _queue(stack: Stack, sqs: Any, logical: str, p: dict[str, Any]) -> None:
    name = p["QueueName"]
    attributes = {}
    if "VisibilityTimeout" in p:
        attributes["VisibilityTimeout"] = str(p["VisibilityTimeout"])
    if "MessageRetentionPeriod" in p:
        attributes["MessageRetentionPeriod"] = str(p["MessageRetentionPeriod"])
    if "RedrivePolicy" in p:
        attributes["RedrivePolicy"] = json.dumps(p["RedrivePolicy"])
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    stack.refs[logical] = url
    stack.attrs[logical] = {"Arn": _arn(stack, "sqs", name), "QueueName": name, "QueueUrl": url}


def _schedule_group(stack: Stack, scheduler: Any, logical: str, p: dict[str, Any]) -> None:
    name = p["Name"]
    arn = scheduler.create_schedule_group(Name=name)["ScheduleGroupArn"]
    stack.refs[logical] = name
    stack.attrs[logical] = {"Arn": arn}


def _glue_database(stack: Stack, glue: Any, logical: str, p: dict[str, Any]) -> None:
    glue.create_database(DatabaseInput=p["DatabaseInput"])
    stack.refs[logical] = p["DatabaseInput"]["Name"]


def _glue_table(glue: Any, p: dict[str, Any]) -> None:
    glue.create_table(DatabaseName=p["DatabaseName"], TableInput=p["TableInput"])


def _workgroup(stack: Stack, athena: Any, logical: str, p: dict[str, Any]) -> None:
    config = dict(p.get("WorkGroupConfiguration", {}))
    config.pop("EngineVersion", None)
    if "BytesScannedCutoffPerQuery" in config:  # parameters resolve to strings
        config["BytesScannedCutoffPerQuery"] = int(config["BytesScannedCutoffPerQuery"])
    athena.create_work_group(Name=p["Name"], Configuration=config)
    stack.refs[logical] = p["Name"]


def _email_identity(stack: Stack, ses: Any, logical: str, p: dict[str, Any]) -> None:
    ses.verify_email_identity(EmailAddress=p["EmailIdentity"])
    stack.refs[logical] = p["EmailIdentity"]


def _configuration_set(stack: Stack, sesv2: Any, logical: str, p: dict[str, Any]) -> None:
    sesv2.create_configuration_set(ConfigurationSetName=p["Name"],
                                   SuppressionOptions=p.get("SuppressionOptions") or {})
    stack.refs[logical] = p["Name"]


def _kms_key(stack: Stack, kms: Any, logical: str, p: dict[str, Any]) -> None:
    key = kms.create_key(Description=p.get("Description", logical), Policy=json.dumps(p["KeyPolicy"]))["KeyMetadata"]
    if p.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    stack.refs[logical] = key["KeyId"]
    stack.attrs[logical] = {"Arn": key["Arn"], "KeyId": key["KeyId"]}


def _kms_alias(stack: Stack, kms: Any, logical: str, p: dict[str, Any]) -> None:
    kms.create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    stack.refs[logical] = p["AliasName"]


def generate_secret_string(spec: dict[str, Any]) -> str:
    """A value as CloudFormation's GenerateSecretString makes it (the options the template uses)."""
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    return "".join(secrets.choice(alphabet) for _ in range(int(spec.get("PasswordLength", 32))))


def _secret(stack: Stack, sm: Any, logical: str, p: dict[str, Any]) -> None:
    if "SecretString" in p:
        value = p["SecretString"]
    elif "GenerateSecretString" in p:
        value = generate_secret_string(p["GenerateSecretString"])
    else:
        raise TemplateError(f"secret {logical} has neither SecretString nor GenerateSecretString")
    kwargs: dict[str, Any] = {"Name": p.get("Name", logical), "SecretString": value}
    if p.get("KmsKeyId"):
        kwargs["KmsKeyId"] = p["KmsKeyId"]
    arn = sm.create_secret(**kwargs)["ARN"]
    stack.refs[logical] = arn  # Ref of a secret is its ARN
    stack.attrs[logical] = {"Id": arn}
