"""template.yaml's security properties: least-privilege roles, encryption, retention, no default secret.

The role checks read the SAM-transformed template, so what SAM adds (roles, managed policies,
event source permissions) is checked too, not only what the template says.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdp_infra.template import REPO_ROOT, load_template, sam_transform

#: Actions whose service has no resource-level permissions: "*" is their only resource.
# Actions with no resource type in the Service Authorization Reference: only "*" can name them.
RESOURCELESS_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords", "ses:GetAccount"})
STATEFUL_TYPES = frozenset({"AWS::DynamoDB::Table", "AWS::Kinesis::Stream", "AWS::S3::Bucket", "AWS::KMS::Key",
                            "AWS::SecretsManager::Secret"})


@pytest.fixture(scope="module")
def cloudformation() -> dict[str, Any]:
    return sam_transform()


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed_actions() -> dict[str, tuple[Path, set[str]]]:
    """Function logical id -> (the allow-list file beside its code, its actions)."""
    found: dict[str, tuple[Path, set[str]]] = {}
    for path in sorted((REPO_ROOT / "functions").glob("*/iam-actions.yaml")):
        for function, actions in yaml.safe_load(path.read_text()).items():
            assert function not in found, f"{function} is listed twice"
            found[function] = (path, set(actions))
    return found


def role_statements(role: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for policy in role["Properties"].get("Policies", []):
        yield from _as_list(policy["PolicyDocument"]["Statement"])


def statement_violations(statement: dict[str, Any], allowed: set[str]) -> list[str]:
    """Why ``statement`` grants more than ``allowed`` (nothing: an empty list)."""
    problems = []
    if statement.get("Effect") != "Allow":
        return problems
    if "NotAction" in statement or "NotResource" in statement:
        problems.append("NotAction/NotResource")
    actions = [str(a) for a in _as_list(statement.get("Action", []))]
    resources = _as_list(statement.get("Resource", []))
    for action in actions:
        if "*" in action or "?" in action:
            problems.append(f"wildcard action {action}")
        elif action not in allowed:
            problems.append(f"action {action} is not in the function's allow-list")
        if "*" in resources and action not in RESOURCELESS_ACTIONS:
            problems.append(f"resource * for {action}, whose service has resource ARNs")
    return problems


#: Roles an AWS service (not a function) assumes, each listed by its logical id in the allow-list
#: file of the function whose code makes the service use it.
SERVICE_ROLES = {"TriggerSchedulerRole": "scheduler.amazonaws.com"}


def function_roles(cloudformation: dict[str, Any]) -> dict[str, str]:
    """Role logical id -> the function logical id that runs as it (a service role: its own id)."""
    roles = {role: role for role in SERVICE_ROLES}
    for logical, resource in cloudformation["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function":
            role = resource["Properties"]["Role"]
            assert isinstance(role, dict) and "Fn::GetAtt" in role, f"{logical} has no role of this template"
            roles[role["Fn::GetAtt"][0]] = logical
    return roles


# ------------------------------------------------------------------ least privilege
def test_the_statement_check_refuses_wildcards_star_resources_and_unlisted_actions() -> None:
    allowed = {"s3:GetObject", "xray:PutTraceSegments"}
    assert statement_violations({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:x"}, allowed)
    assert statement_violations({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}, allowed)
    assert statement_violations({"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:x"}, allowed)
    assert not statement_violations({"Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"}, allowed)
    assert not statement_violations({"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:x"]}, allowed)


def test_every_role_of_the_deployed_template_belongs_to_one_function(cloudformation: dict[str, Any]) -> None:
    roles = {k for k, r in cloudformation["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert roles == set(function_roles(cloudformation))


def test_no_role_has_a_managed_policy(cloudformation: dict[str, Any]) -> None:
    for logical, resource in cloudformation["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            assert not resource["Properties"].get("ManagedPolicyArns"), logical


def test_every_role_grants_exactly_its_functions_allow_list(cloudformation: dict[str, Any]) -> None:
    allow = allowed_actions()
    for role_id, function in function_roles(cloudformation).items():
        assert function in allow, f"{function} has no iam-actions.yaml entry"
        _, allowed = allow[function]
        granted: set[str] = set()
        for statement in role_statements(cloudformation["Resources"][role_id]):
            assert not statement_violations(statement, allowed), (role_id, statement_violations(statement, allowed))
            granted |= {str(a) for a in _as_list(statement["Action"])}
        assert granted == allowed, f"{function}: listed but not granted {sorted(allowed - granted)}"


def test_a_service_role_is_assumed_by_its_service_of_this_account_only(template: dict[str, Any]) -> None:
    for role, service in SERVICE_ROLES.items():
        (trust,) = template["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": service}
        assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]


def test_only_the_activation_function_may_pass_the_scheduler_role_and_to_the_scheduler_only(
        template: dict[str, Any]) -> None:
    passing = {logical: st for logical, r in template["Resources"].items() if r["Type"] == "AWS::IAM::Role"
               for st in role_statements(r) if "iam:PassRole" in _as_list(st["Action"])}
    assert list(passing) == ["ActivateRole"]
    assert passing["ActivateRole"]["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


def test_each_allow_list_sits_beside_the_code_of_its_functions(template: dict[str, Any]) -> None:
    functions = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    allow = allowed_actions()
    assert set(allow) == set(functions) | set(SERVICE_ROLES)
    for function, (path, _) in allow.items():
        if function in SERVICE_ROLES:
            continue
        assert path.parent == (REPO_ROOT / functions[function]["Properties"]["CodeUri"]).resolve()


def test_only_the_admin_routes_functions_may_read_the_admin_secret(cloudformation: dict[str, Any]) -> None:
    readers = {function: [r for st in role_statements(cloudformation["Resources"][role])
                          if "secretsmanager:GetSecretValue" in _as_list(st["Action"])
                          for r in _as_list(st["Resource"])]
               for role, function in function_roles(cloudformation).items()}
    readers = {function: resources for function, resources in readers.items() if resources}
    # The collector (profile API) and the customer view (timeline, page and its signed links).
    admin = {f for f, resources in readers.items() if {"Ref": "AdminTokenSecret"} in resources}
    assert admin == {"CollectFunction", "ProfileViewFunction"}
    assert {f for f, resources in readers.items() if {"Ref": "IpHashKeySecret"} in resources} == {"CollectFunction"}
    # The destinations read their own secrets only, under the stack's destinations/ prefix.
    destination_secrets = [{"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:"
                                       "${AWS::AccountId}:secret:${AWS::StackName}/destinations/*"}]
    assert readers["DeliverFunction"] == destination_secrets
    # The privacy function too: an erasure takes the person out of every ad audience.
    assert readers["PrivacyFunction"] == destination_secrets
    # Activation signs unsubscribe links with a key of its own (the collector checks them).
    assert readers["ActivateFunction"] == [{"Ref": "UnsubscribeLinkSecret"}]
    assert set(readers) == {"CollectFunction", "ProfileViewFunction", "DeliverFunction", "ActivateFunction",
                            "PrivacyFunction"}


def test_the_admin_functions_may_only_get_an_operator_and_nothing_else_reaches_the_operators_table(
        cloudformation: dict[str, Any]) -> None:
    operators = {"Fn::GetAtt": ["OperatorsTable", "Arn"]}
    granted = {function: sorted(a for st in role_statements(cloudformation["Resources"][role])
                                if operators in _as_list(st["Resource"]) for a in _as_list(st["Action"]))
               for role, function in function_roles(cloudformation).items()}
    # Adding and revoking operators is `cdp operators`, with the operator's own IAM credentials.
    assert {f: a for f, a in granted.items() if a} == {"CollectFunction": ["dynamodb:GetItem"],
                                                        "ProfileViewFunction": ["dynamodb:GetItem"]}


def test_the_collector_writes_to_the_lake_only_under_quarantine(template: dict[str, Any]) -> None:
    statements = template["Resources"]["CollectRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    s3 = [r for st in statements if any(a.startswith("s3:") for a in _as_list(st["Action"]))
          for r in _as_list(st["Resource"])]
    assert s3 == [{"Fn::Sub": "${LakeBucket.Arn}/quarantine/*"}]


# ------------------------------------------------------------------ the admin token
def test_no_parameter_or_environment_variable_carries_a_secret(template: dict[str, Any]) -> None:
    for name, parameter in template["Parameters"].items():
        assert not any(word in name.lower() for word in ("token", "secret", "password")), name
        assert not parameter.get("NoEcho"), name
    env = json.dumps(template["Globals"]["Function"]["Environment"])
    assert "Secret" not in env and "TOKEN" not in env


@pytest.mark.parametrize(("logical", "functions"), [
    ("AdminTokenSecret", {"CollectFunction", "ProfileViewFunction"}),
    ("UnsubscribeLinkSecret", {"CollectFunction", "ActivateFunction"}),  # sign (activate), check (collect)
    ("IpHashKeySecret", {"CollectFunction"}),  # the IP hash at collection
])
def test_each_secret_is_generated_under_the_stacks_key_and_given_only_to_its_functions(
        template: dict[str, Any], logical: str, functions: set[str]) -> None:
    secrets = {k: r for k, r in template["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret"}
    assert set(secrets) == {"AdminTokenSecret", "UnsubscribeLinkSecret", "IpHashKeySecret"}
    secret = secrets[logical]
    assert "GenerateSecretString" in secret["Properties"] and "SecretString" not in secret["Properties"]
    assert secret["Properties"]["KmsKeyId"] == {"Ref": "DataKey"}
    given = {k for k, r in template["Resources"].items()
             if {"Ref": logical} in r.get("Properties", {}).get("Environment", {}).get("Variables", {}).values()}
    assert given == functions


# ------------------------------------------------------------------ hardening
def test_every_stateful_resource_is_retained_on_delete_and_replace(template: dict[str, Any]) -> None:
    for logical, resource in template["Resources"].items():
        if resource["Type"] in STATEFUL_TYPES:
            assert resource.get("DeletionPolicy") == "Retain", logical
            assert resource.get("UpdateReplacePolicy") == "Retain", logical


def test_every_table_is_protected_backed_up_and_encrypted_with_the_stacks_key(template: dict[str, Any]) -> None:
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::DynamoDB::Table":
            p = resource["Properties"]
            assert p["DeletionProtectionEnabled"] is True, logical
            assert p["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, logical
            assert p["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS",
                                             "KMSMasterKeyId": {"Ref": "DataKey"}}, logical


def test_the_key_rotates_and_encrypts_the_lake_stream_queues_and_environment(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources["DataKey"]["Properties"]["EnableKeyRotation"] is True
    key_arn = {"Fn::GetAtt": ["DataKey", "Arn"]}
    rule = resources["LakeBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}
    assert rule["BucketKeyEnabled"] is True
    assert resources["EventsStream"]["Properties"]["StreamEncryption"]["KeyId"] == {"Ref": "DataKey"}
    for logical, resource in resources.items():
        if resource["Type"] == "AWS::SQS::Queue":
            assert resource["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}, logical
        if resource["Type"] == "AWS::Logs::LogGroup":
            assert resource["Properties"]["KmsKeyId"] == key_arn, logical
    assert template["Globals"]["Function"]["KmsKeyArn"] == key_arn


def test_the_lake_refuses_requests_over_plain_http(template: dict[str, Any]) -> None:
    policies = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::S3::BucketPolicy"]
    assert [p["Bucket"] for p in policies] == [{"Ref": "LakeBucket"}]
    statements = policies[0]["PolicyDocument"]["Statement"]
    assert {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}.items() <= statements[0].items()


def test_the_api_writes_access_logs_to_its_log_group(template: dict[str, Any]) -> None:
    setting = template["Resources"]["CollectApi"]["Properties"]["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    assert "$context.requestId" in setting["Format"]


def test_stream_consumers_keep_retrying_records_for_the_streams_whole_retention(template: dict[str, Any]) -> None:
    retention = template["Resources"]["EventsStream"]["Properties"]["RetentionPeriodHours"]
    assert retention == {"Ref": "StreamRetentionHours"}
    retention_s = int(template["Parameters"]["StreamRetentionHours"]["MaxValue"]) * 3600
    for r in template["Resources"].values():
        for event in r.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "Kinesis":
                assert event["Properties"]["MaximumRecordAgeInSeconds"] >= retention_s


def test_scheduled_functions_run_one_at_a_time_and_send_failures_to_a_queue(template: dict[str, Any]) -> None:
    scheduled = {k: r["Properties"] for k, r in template["Resources"].items()
                 if any(e["Type"] == "Schedule" for e in r.get("Properties", {}).get("Events", {}).values())}
    assert scheduled
    queues = {k for k, r in template["Resources"].items() if r["Type"] == "AWS::SQS::Queue"}
    for logical, p in scheduled.items():
        assert p["ReservedConcurrentExecutions"] == 1, logical
        failure = p["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
        assert failure["Type"] == "SQS" and failure["Destination"]["Fn::GetAtt"][0] in queues, logical


def test_unify_counts_as_many_deliveries_as_the_stream_mappings_make(template: dict[str, Any]) -> None:
    from cdp.failures import MAPPING_DELIVERIES

    for r in template["Resources"].values():
        for event in r.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "Kinesis":
                assert event["Properties"]["MaximumRetryAttempts"] + 1 == MAPPING_DELIVERIES


def test_unify_writes_to_the_lake_only_its_own_failure_records(template: dict[str, Any]) -> None:
    statements = list(role_statements(template["Resources"]["UnifyRole"]))
    s3 = [s for s in statements if any(str(a).startswith("s3:") for a in _as_list(s["Action"]))]
    objects = [s["Resource"] for s in s3 if "s3:PutObject" in s["Action"]]
    assert objects == [{"Fn::Sub": "${LakeBucket.Arn}/failures/unify/*"}]
    [listing] = [s for s in s3 if "s3:ListBucket" in s["Action"]]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "failures/unify/*"}}


def test_what_unify_keeps_is_announced_on_the_queue_whose_alarm_fires(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert template["Globals"]["Function"]["Environment"]["Variables"]["FAILURE_QUEUE_URL"] == {
        "Ref": "UnifyFailureQueue"}
    alarm = resources["UnifyFailureQueueAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["UnifyFailureQueue", "QueueName"]}}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
