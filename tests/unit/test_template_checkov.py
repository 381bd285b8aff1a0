"""checkov on the SAM-transformed template: every check passes but the ones listed, with reasons, in
infra/checkov/skipped-checks.yaml. checkov lives in its own virtualenv (`make checkov`)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdp_infra.template import REPO_ROOT, sam_transform

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKOV_SKIPS = REPO_ROOT / "infra" / "checkov" / "skipped-checks.yaml"


@pytest.fixture(scope="module")
def cloudformation() -> dict[str, Any]:
    return sam_transform()


def test_checkov_passes_on_the_deployed_template_but_for_the_listed_skips(
    cloudformation: dict[str, Any], tmp_path: Path
) -> None:
    if not CHECKOV.exists():
        pytest.skip("checkov is not installed: `make checkov` makes .venv-checkov (make test does it first)")
    skips: dict[str, str] = yaml.safe_load(CHECKOV_SKIPS.read_text())
    assert all(reason.strip() for reason in skips.values())
    path = tmp_path / "template.json"
    path.write_text(json.dumps(cloudformation, default=str))
    result = subprocess.run(
        [str(CHECKOV), "--file", str(path), "--framework", "cloudformation", "--output", "json", "--quiet",
         "--compact", "--skip-check", ",".join(sorted(skips))],
        capture_output=True, text=True, timeout=300, check=False,
    )
    report = json.loads(result.stdout)
    report = report[0] if isinstance(report, list) else report
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert failed == []
    assert report["summary"]["passed"] > 0
