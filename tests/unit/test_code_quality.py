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


def _any_parameters(source: str) -> list[str]:
    """Parameters and dataclass fields annotated ``Any`` (alone or in a union) in ``source``."""
    import ast

    def is_any(node: ast.expr | None) -> bool:
        if isinstance(node, ast.Name | ast.Attribute):
            return (node.id if isinstance(node, ast.Name) else node.attr) == "Any"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return is_any(node.left) or is_any(node.right)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name | ast.Attribute):
            name = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
            if name in ("Optional", "Union"):
                parts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
                return any(is_any(p) for p in parts)
        return False

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                if arg is not None and is_any(arg.annotation):
                    found.append(f"{node.name}({arg.arg})")
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and is_any(item.annotation) and isinstance(item.target, ast.Name):
                    found.append(f"{node.name}.{item.target.id}")
    return found


def test_the_any_finder_sees_parameters_fields_and_optionals_but_not_containers() -> None:
    source = ("class Job:\n    store: Any\n"
              "def run(store: Any, *, m: Optional[Any] = None, e: int | Any = 0, ok: dict[str, Any]) -> Any: ...\n")
    assert sorted(_any_parameters(source)) == ["Job.store", "run(e)", "run(m)", "run(store)"]


def test_no_job_takes_a_parameter_typed_any() -> None:
    jobs = REPO_ROOT / "layers" / "common" / "cdp" / "jobs"
    found = {path.name: _any_parameters(path.read_text()) for path in sorted(jobs.glob("*.py"))}
    assert {name: params for name, params in found.items() if params} == {}
