"""An update of the stack keeps its data: no change to template.yaml replaces a table, the stream,
the bucket, the key or the secret, and each of them outlives a deletion or a replacement.

The snapshot is infra/deploy/stateful-resources.json; see cdp_infra.stateful for how to
regenerate it after a deliberate, migrated change.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from cdp_infra.stateful import SNAPSHOT_PATH, STATEFUL_TYPES, snapshot_text, stateful_resources
from cdp_infra.template import load_template


def _differences(template: dict[str, Any]) -> list[str]:
    committed = json.loads(SNAPSHOT_PATH.read_text())
    current = stateful_resources(template)
    problems = [f"{lid}: stateful resource missing or renamed (CloudFormation would delete it)"
                for lid in committed if lid not in current]
    for lid, properties in committed.items():
        if lid in current and current[lid] != properties:
            changed = sorted(k for k in set(properties) | set(current[lid]) if properties.get(k) != current[lid].get(k))
            problems.append(f"{lid}: {changed} changed (CloudFormation replaces the resource)")
    return problems


def test_no_stateful_resource_is_replaced_by_the_template_as_committed() -> None:
    # Given the committed snapshot of stateful resources, When the template is read,
    # Then every logical id and replacement-triggering property is as it was.
    assert _differences(load_template()) == []


def test_the_snapshot_file_lists_every_stateful_resource_of_the_template() -> None:
    # A new table or queue is added to the snapshot on purpose, so it is held still from then on.
    assert json.loads(snapshot_text()) == json.loads(SNAPSHOT_PATH.read_text())


@pytest.mark.parametrize(("logical_id", "prop", "value"), [
    ("ProfilesTable", "TableName", {"Fn::Sub": "${AWS::StackName}-people"}),
    ("MembershipTable", "KeySchema", [{"AttributeName": "segment", "KeyType": "HASH"}]),
    ("EventsStream", "Name", "events"),
    ("LakeBucket", "BucketName", "my-lake"),
])
def test_a_replacing_change_is_caught(logical_id: str, prop: str, value: Any) -> None:
    # Given a template in which one replacement-triggering property changed
    template = copy.deepcopy(load_template())
    template["Resources"][logical_id]["Properties"][prop] = value
    # Then the check names that resource and property
    assert _differences(template) == [f"{logical_id}: ['{prop}'] changed (CloudFormation replaces the resource)"]


def test_renaming_a_stateful_logical_id_is_caught() -> None:
    template = copy.deepcopy(load_template())
    template["Resources"]["EventsStreamV2"] = template["Resources"].pop("EventsStream")
    assert "EventsStream: stateful resource missing or renamed (CloudFormation would delete it)" in _differences(template)


def test_a_setting_change_on_a_table_is_not_a_replacement() -> None:
    template = copy.deepcopy(load_template())
    template["Resources"]["ProfilesTable"]["Properties"]["BillingMode"] = "PROVISIONED"
    assert _differences(template) == []


def test_every_data_store_is_retained_on_deletion_and_on_replacement() -> None:
    template = load_template()
    retained_types = {t for t, spec in STATEFUL_TYPES.items() if spec["retain"]}
    stores = {lid: r for lid, r in template["Resources"].items() if r["Type"] in retained_types}
    assert {r["Type"] for r in stores.values()} >= {"AWS::DynamoDB::Table", "AWS::Kinesis::Stream", "AWS::S3::Bucket"}
    not_retained = [lid for lid, r in stores.items()
                    if r.get("DeletionPolicy") != "Retain" or r.get("UpdateReplacePolicy") != "Retain"]
    assert not_retained == []
