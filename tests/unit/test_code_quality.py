"""The house style is checked with the tests: ruff on the whole tree, mypy on the domain package."""

from __future__ import annotations

import subprocess
import sys

from cdp_infra.template import REPO_ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_error_in_the_domain_package() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
