"""template.yaml is valid, deployable, and the only source of every name the code reads."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from cdp.settings import (
    ACTIVATION_FIELDS,
    COLLECTOR_FIELDS,
    DELIVERY_FIELDS,
    FUNCTION_FIELDS,
    MINIMISE_FIELDS,
    UNSUBSCRIBE_FIELDS,
    Settings,
)
from cdp_infra.template import REPO_ROOT, TEMPLATE_PATH, FunctionSpec, load_template, sam_transform


def test_cfn_lint_passes_clean_on_the_template() -> None:
    result = subprocess.run([sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
                             str(TEMPLATE_PATH)], capture_output=True,
                            text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def cloudformation() -> dict[str, Any]:
    """The template after the SAM transform (offline), as CloudFormation would deploy it."""
    from samtranslator.model.exceptions import InvalidDocumentException

    try:
        return sam_transform()
    except InvalidDocumentException as exc:  # pragma: no cover - the message is the diagnosis
        pytest.fail("; ".join(str(c) for c in exc.causes))


def test_the_sam_transform_turns_the_template_into_cloudformation_offline(cloudformation: dict[str, Any]) -> None:
    types = {r["Type"] for r in cloudformation["Resources"].values()}
    assert {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::ApiGateway::RestApi",
            "AWS::Events::Rule", "AWS::Lambda::LayerVersion"} <= types


def test_every_environment_variable_of_the_template_is_a_settings_field_and_back() -> None:
    template = load_template()
    powertools = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL", "POWERTOOLS_LOGGER_SAMPLE_RATE"}
    globals_ = set(template["Globals"]["Function"]["Environment"]["Variables"]) - powertools
    assert globals_ == {name.upper() for name in FUNCTION_FIELDS}
    own = {lid: set(r["Properties"].get("Environment", {}).get("Variables", {}))
           for lid, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    admin = {name.upper() for name in COLLECTOR_FIELDS}
    assert {lid: names for lid, names in own.items() if names} == {
        "CollectFunction": admin | {name.upper() for name in UNSUBSCRIBE_FIELDS | MINIMISE_FIELDS}, "ProfileViewFunction": admin,
        "DeliverFunction": {name.upper() for name in DELIVERY_FIELDS},
        "PrivacyFunction": {"DESTINATION_SECRET_PREFIX"},  # an erasure removes the person from ad audiences
        "ActivateFunction": {name.upper() for name in ACTIVATION_FIELDS}}


def test_every_function_handler_file_exists_where_its_code_uri_says() -> None:
    for r in load_template()["Resources"].values():
        if r["Type"] == "AWS::Serverless::Function":
            p = r["Properties"]
            spec = FunctionSpec("f", REPO_ROOT / p["CodeUri"], p["Handler"], {}, {}, 3)
            assert spec.module_file.is_file(), spec.module_file


def test_every_kinesis_mapping_reports_partial_failures_and_has_an_on_failure_destination() -> None:
    for r in load_template()["Resources"].values():
        for event in r.get("Properties", {}).get("Events", {}).values():
            if event["Type"] == "Kinesis":
                props = event["Properties"]
                assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
                assert props["BisectBatchOnFunctionError"] is True
                assert 0 <= props["MaximumRetryAttempts"] <= 10
                assert props["DestinationConfig"]["OnFailure"]["Destination"]


def test_the_layer_requirements_are_pinned_to_the_lock_file() -> None:
    lock = {line.split("==")[0]: line.strip() for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    for layer in ("common", "analytics"):
        for line in (REPO_ROOT / "layers" / layer / "requirements.txt").read_text().splitlines():
            if line and not line.startswith("#"):
                assert lock[line.split("==")[0]] == line


def test_every_package_the_domain_imports_is_in_a_layer_or_the_lambda_runtime() -> None:
    import ast
    import sys

    provided = {"boto3", "botocore", "urllib3"}  # the Python runtime ships boto3 and its dependencies
    provided.add("duckdb")  # the local query engine only: on AWS the engine is Athena
    for layer in ("common", "analytics"):
        for line in (REPO_ROOT / "layers" / layer / "requirements.txt").read_text().splitlines():
            if line and not line.startswith("#"):
                provided.add(line.split("==")[0].lower())
    distribution = {"yaml": "pyyaml", "aws_xray_sdk": "aws-xray-sdk", "aws_lambda_powertools": "aws-lambda-powertools"}
    missing = set()
    for path in (REPO_ROOT / "layers" / "common" / "cdp").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for name in names:
                top = name.split(".")[0]
                if top != "cdp" and top not in sys.stdlib_module_names and distribution.get(top, top) not in provided:
                    missing.add(f"{path.relative_to(REPO_ROOT)}: {top}")
    assert not missing, sorted(missing)


def test_an_effect_claim_outlives_its_holder_and_expires_before_the_message_is_dead_lettered() -> None:
    # Given every function whose handler claims effects in the ledger, and the hold it gets
    template = load_template()
    resources, timeout = template["Resources"], template["Globals"]["Function"]["Timeout"]
    claimers = {lid: r for lid, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
                and "DynamoEffectLedger" in FunctionSpec(lid, REPO_ROOT / r["Properties"]["CodeUri"],
                                                         r["Properties"]["Handler"], {}, {}, 3).module_file.read_text()}
    hold = Settings().effect_claim_hold_seconds
    assert {"ActivateFunction", "DeliverFunction"} <= set(claimers)
    for lid, function in claimers.items():
        # Then Lambda ends a holder (its send included) before its claim can be taken over
        assert hold > function["Properties"].get("Timeout", timeout), lid
        for event in function["Properties"]["Events"].values():
            if event["Type"] != "SQS":
                continue
            queue = resources[event["Properties"]["Queue"]["Fn::GetAtt"][0]]["Properties"]
            # And a redelivery takes a dead holder's claim over before the redrive gives up on it
            assert hold < queue["VisibilityTimeout"] * (queue["RedrivePolicy"]["maxReceiveCount"] - 1), lid


def test_settings_convert_numeric_fields_and_ignore_empty_values() -> None:
    settings = Settings.from_env({"CLAIM_TRANSACTION_MIN": "100", "LAKE_BUCKET": "", "PROFILES_TABLE": "p"})
    assert settings.claim_transaction_min == 100 and settings.lake_bucket == "" and settings.profiles_table == "p"


# ---------------------------------------------------------------- observability
def _alarms() -> dict[str, dict]:
    return {k: r["Properties"] for k, r in load_template()["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def _arn_target(value: object) -> str | None:
    """The logical id of ``!GetAtt X.Arn``."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical, attribute = value["Fn::GetAtt"]
        return logical if attribute == "Arn" else None
    return None


def test_every_failure_destination_and_dead_letter_queue_has_an_alarm_on_its_depth() -> None:
    resources = load_template()["Resources"]
    queues: set[str] = set()
    for r in resources.values():
        props = r.get("Properties", {})
        queues.add(_arn_target((props.get("RedrivePolicy") or {}).get("deadLetterTargetArn")) or "")
        for event in props.get("Events", {}).values():
            destination = (event["Properties"].get("DestinationConfig") or {}).get("OnFailure", {})
            queues.add(_arn_target(destination.get("Destination")) or "")
    queues.discard("")
    assert queues >= {"UnifyFailureQueue", "ActivationDeadLetterQueue"}
    watched = {dim["Value"]["Fn::GetAtt"][0] for alarm in _alarms().values()
               if alarm["Namespace"] == "AWS/SQS" and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
               and alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
               for dim in alarm["Dimensions"] if dim["Name"] == "QueueName"}
    assert queues <= watched


def test_every_alarm_notifies_the_alarm_topic() -> None:
    alarms = _alarms()
    assert len(alarms) >= 6
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


def test_alarms_on_our_metrics_use_the_namespace_and_service_the_functions_publish_with() -> None:
    from cdp.observability import CATALOGUE

    template = load_template()
    mapping = template["Mappings"]["Observability"]["Metrics"]
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == {"Fn::FindInMap": ["Observability", "Metrics", "Namespace"]}
    assert env["POWERTOOLS_SERVICE_NAME"] == {"Fn::FindInMap": ["Observability", "Metrics", "Service"]}
    ours = [a for a in _alarms().values() if not str(a["Namespace"]).startswith("AWS/")]
    assert ours
    for alarm in ours:
        assert alarm["Namespace"] == {"Fn::FindInMap": ["Observability", "Metrics", "Namespace"]}
        assert alarm["MetricName"] in CATALOGUE and CATALOGUE[alarm["MetricName"]].dimension is None
        assert alarm["Dimensions"] == [{"Name": "service",
                                        "Value": {"Fn::FindInMap": ["Observability", "Metrics", "Service"]}}]
    assert mapping["Namespace"] and mapping["Service"]


def test_the_dashboard_body_is_json_naming_catalogued_metrics_and_existing_resources() -> None:
    import json
    import re

    from cdp.observability import CATALOGUE

    template = load_template()
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    for ref in set(re.findall(r"\$\{([^}!]+)\}", body)):
        name = ref.split(".", 1)[0]
        assert ref.startswith("AWS::") or ref in variables or name in template["Resources"], ref
    widgets = json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: m.group(1).replace('"', ""), body))["widgets"]
    named: set[str] = set()
    for widget in widgets:
        for row in widget["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                search = row[0]["expression"]
                assert search.startswith("SEARCH('{Namespace,"), search
                named.update(re.findall(r'MetricName="(\w+)"', search))
            elif row[0] == "Namespace":
                named.add(row[1])
    assert named <= set(CATALOGUE)
    assert {"EventsAccepted", "EventsRejected", "ProfilesMerged", "SegmentEntries", "EmailsSent"} <= named
    alarms = {a for w in widgets if w["type"] == "alarm" for a in w["properties"]["alarms"]}
    assert alarms == {f"{name}.Arn" for name in _alarms()}


def test_the_alarm_email_subscription_exists_only_when_an_address_is_given() -> None:
    template = load_template()
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""


def test_ses_publishes_send_events_to_the_feedback_function_which_may_only_update_the_ledger() -> None:
    # The Send event confirms the ledger claim of a message SES accepted (docs/architecture.md).
    resources = load_template()["Resources"]
    destination = resources["CampaignEventDestination"]["Properties"]["EventDestination"]
    assert "send" in [t.lower() for t in destination["MatchingEventTypes"]]
    statements = resources["FeedbackRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    ledger = [s for s in statements if any(a.startswith("dynamodb:") for a in s["Action"])]
    assert [(s["Action"], s["Resource"]) for s in ledger] == [(["dynamodb:UpdateItem"],
                                                              {"Fn::GetAtt": ["IdempotencyTable", "Arn"]})]
