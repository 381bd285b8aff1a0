"""The stack's stateful resources and the properties whose change makes CloudFormation replace
them (a new, empty table, stream, bucket, key or secret, the old one retained or lost).

``tests/unit/test_stateful_resources.py`` holds template.yaml to the committed snapshot
``infra/deploy/stateful-resources.json``; after a deliberate change (with a migration plan, see
docs/deploy.md), regenerate it with ``python -m cdp_infra.stateful > infra/deploy/stateful-resources.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .template import REPO_ROOT, load_template

SNAPSHOT_PATH = Path(REPO_ROOT) / "infra" / "deploy" / "stateful-resources.json"

#: Per type, the properties whose update requires replacement (CloudFormation's resource reference,
#: "Update requires: Replacement"). ``retain``: the data lives in the resource itself, so it must
#: survive a stack deletion or a replacement (DeletionPolicy and UpdateReplacePolicy Retain).
STATEFUL_TYPES: dict[str, dict[str, Any]] = {
    "AWS::DynamoDB::Table": {"retain": True, "replaced_by": ["TableName", "KeySchema", "LocalSecondaryIndexes",
                                                            "ImportSourceSpecification"]},
    "AWS::Kinesis::Stream": {"retain": True, "replaced_by": ["Name"]},
    "AWS::S3::Bucket": {"retain": True, "replaced_by": ["BucketName", "ObjectLockEnabled"]},
    "AWS::KMS::Key": {"retain": True, "replaced_by": ["KeySpec", "KeyUsage", "MultiRegion"]},
    "AWS::SecretsManager::Secret": {"retain": True, "replaced_by": ["Name"]},
    # Queues hold failed records for replay only briefly; they are not retained on deletion, but a
    # replacement while they hold records would drop them, so their names are held still too.
    "AWS::SQS::Queue": {"retain": False, "replaced_by": ["QueueName", "FifoQueue"]},
}


def stateful_resources(template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Logical id -> type and the replacement-triggering properties as the template writes them."""
    template = template or load_template()
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in sorted(template["Resources"].items()):
        spec = STATEFUL_TYPES.get(resource.get("Type", ""))
        if spec is None:
            continue
        properties = resource.get("Properties", {}) or {}
        found[logical_id] = {"Type": resource["Type"],
                             **{name: properties[name] for name in spec["replaced_by"] if name in properties}}
    return found


def snapshot_text(template: dict[str, Any] | None = None) -> str:
    return json.dumps(stateful_resources(template), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(snapshot_text())
