"""A real deploy of template.yaml: `sam build` + `sam deploy` to ministack on 127.0.0.1, and finding
a deployed stack's resources from its CloudFormation outputs (locally or on AWS).

The fast tier (``cdp dev``, moto, handlers in-process) stays the everyday loop; this is the slower
proof that the unchanged template deploys and runs as Lambda functions.

    python -m cdp_infra.deployed deploy [--stack NAME] [--param Key=Value ...]
    python -m cdp_infra.deployed stop
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from .template import load_template

ROOT = Path(__file__).resolve().parents[2]
STATE_FILE = ROOT / ".cdp" / "deployed-local.json"
EMULATOR_LOG = ROOT / ".cdp" / "emulator.log"
SAM_VENV = ROOT / ".venv-sam"
EMULATOR_VENV = ROOT / ".venv-emulator"
DEFAULT_STACK = "cdp-local"
REGION = "us-east-1"
# The emulator accepts any credentials; these never leave the machine.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION}


class EmulatorUnavailable(RuntimeError):
    """The local emulator or SAM CLI cannot run on this machine (the reason says why)."""


def host_architecture() -> str:
    """The Lambda architecture that runs natively here: the emulator executes handlers on the host,
    so arm64 wheels (pyarrow, pydantic-core ...) cannot load on an x86_64 host and vice versa."""
    return "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "x86_64"


def unavailable_reason() -> str | None:
    """Why the local deploy cannot run here, or None."""
    for venv, tool, target in ((SAM_VENV, "sam", "sam-cli"), (EMULATOR_VENV, "ministack", "emulator")):
        if not (venv / "bin" / tool).exists():
            return f"{venv.name}/bin/{tool} is missing (`make {target}` installs it; it needs python3.12)"
    return None


# ---------------------------------------------------------------- the emulator process
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _emulator_environment(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(LOCAL_CREDENTIALS)
    env.update({
        # Loopback only (its default is 0.0.0.0), on a port of our own so engineers sharing a
        # machine do not collide, with the side listeners it would otherwise open turned off.
        "BIND_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "MINISTACK_REGION": REGION,
        "IOT_MTLS_ENABLED": "0",
        "SFTP_ENABLED": "0",
        "PERSIST_STATE": "0",
        "S3_PERSIST": "0",
        "LAMBDA_EXECUTOR": "local",
        "LOG_LEVEL": "WARNING",
        "PATH": f"{EMULATOR_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    })
    return env


def _ready(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_ministack/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class LocalDeployment:
    """What `deploy` leaves behind for the smoke tests and `cdp --stack`: where the emulator is."""

    endpoint: str
    pid: int
    stack: str = DEFAULT_STACK
    timings: dict[str, float] = field(default_factory=dict)

    def save(self) -> None:
        STATE_FILE.parent.mkdir(exist_ok=True)
        STATE_FILE.write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls) -> LocalDeployment | None:
        if not STATE_FILE.exists():
            return None
        state = cls(**json.loads(STATE_FILE.read_text()))
        return state if _ready(state.endpoint) else None

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (and the cdp code) at this emulator."""
        return {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}


def start_emulator() -> LocalDeployment:
    reason = unavailable_reason()
    if reason:
        raise EmulatorUnavailable(reason)
    running = LocalDeployment.load()
    if running:
        return running
    port = _free_port()
    EMULATOR_LOG.parent.mkdir(exist_ok=True)
    log = EMULATOR_LOG.open("w")
    process = subprocess.Popen([str(EMULATOR_VENV / "bin" / "ministack")], env=_emulator_environment(port),
                               cwd=EMULATOR_LOG.parent, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not _ready(endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise EmulatorUnavailable(f"ministack did not start (see {EMULATOR_LOG.relative_to(ROOT)}): "
                                      + EMULATOR_LOG.read_text()[-600:])
        time.sleep(0.5)
    state = LocalDeployment(endpoint=endpoint, pid=process.pid)
    state.save()
    return state


def stop_emulator() -> bool:
    if not STATE_FILE.exists():
        return False
    state = json.loads(STATE_FILE.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.killpg(int(state["pid"]), signal.SIGTERM)
    STATE_FILE.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------- sam build + sam deploy
def _sam(args: list[str], env: dict[str, str]) -> None:
    command = [str(SAM_VENV / "bin" / "sam"), *args]
    result = subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, check=False)
    if result.returncode:
        raise SystemExit(f"`sam {args[0]}` failed with exit code {result.returncode}")


def _sam_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VIRTUAL_ENV"))}
    env.update(extra)
    # sam build builds the python3.12 functions with the python3.12 on PATH: the venv's own.
    env["PATH"] = f"{SAM_VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["SAM_CLI_TELEMETRY"] = "0"
    env["SAM_CLI_UPDATE_CHECK"] = "0"  # no network but loopback
    return env


def deploy(stack: str = DEFAULT_STACK, parameters: dict[str, str] | None = None) -> LocalDeployment:
    """Build for the host's architecture and deploy the unchanged template to the local emulator."""
    started = time.monotonic()
    state = start_emulator()
    state.stack = stack
    state.timings["emulator_start_s"] = round(time.monotonic() - started, 1)
    env = _sam_environment(state.environment())
    # The emulator has no X-Ray (its CloudFormation refuses AWS::XRay::SamplingRule): no rule.
    overrides = {"Architecture": host_architecture(), "ApiTraceSampleRate": "none", **(parameters or {})}
    # SAM CLI joins the overrides and splits them on spaces again: quote each value.
    override_args = [f'{k}="{v}"' for k, v in overrides.items()]

    t = time.monotonic()
    build_dir = ROOT / ".aws-sam" / "local-build"
    _sam(["build", "--build-dir", str(build_dir), "--cached", "--cache-dir", str(ROOT / ".aws-sam" / "local-cache"),
          "--parameter-overrides", *override_args], env)
    state.timings["sam_build_s"] = round(time.monotonic() - t, 1)

    import boto3

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
    artifacts = f"{stack}-sam-artifacts"
    s3 = session.client("s3", endpoint_url=state.endpoint)
    if artifacts not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=artifacts)

    t = time.monotonic()
    _sam(["deploy", "--template-file", str(build_dir / "template.yaml"), "--stack-name", stack,
          "--s3-bucket", artifacts, "--region", REGION, "--no-confirm-changeset", "--no-fail-on-empty-changeset",
          "--capabilities", "CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND",
          "--parameter-overrides", *override_args], env)
    state.timings["sam_deploy_s"] = round(time.monotonic() - t, 1)
    state.timings["total_s"] = round(time.monotonic() - started, 1)
    state.save()
    return state


# ---------------------------------------------------------------- a deployed stack's resources
def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def _referenced(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return str(value["Ref"])
    return None


def environment_from_outputs(outputs: dict[str, str], template: dict[str, Any] | None = None) -> dict[str, str]:
    """The variables the functions get (template Globals and per-function Environment) that name a
    resource, filled from the stack outputs of the same name (``<LogicalId>`` or ``<LogicalId>Name``).

    The template stays the one place that ties a variable to a resource; the outputs give the
    physical names. ``CDP_URL`` is the ``CollectorUrl`` output."""
    template = template or load_template()
    variables: dict[str, str] = {}
    sections = [template.get("Globals", {}).get("Function", {})]
    sections += [r.get("Properties", {}) for r in template["Resources"].values()
                 if r.get("Type") == "AWS::Serverless::Function"]
    for section in sections:
        for name, value in (section.get("Environment", {}).get("Variables", {}) or {}).items():
            logical = _referenced(value)
            if logical is None or name in variables:
                continue
            for key in (logical, f"{logical}Name", f"{logical}Url", f"{logical}Arn"):
                if key in outputs:
                    variables[name] = outputs[key]
                    break
    if "CollectorUrl" in outputs:
        variables["CDP_URL"] = outputs["CollectorUrl"]
    return variables


def local_collector_url(collector_url: str, endpoint: str) -> str:
    """The emulator serves a REST API at ``/_aws/execute-api/{api id}/{stage}`` on its own port, not
    at the ``{api id}.execute-api.{region}.amazonaws.com`` host that the CollectorUrl output names."""
    parsed = urlparse(collector_url)
    api_id = parsed.hostname.split(".", 1)[0] if parsed.hostname else ""
    return f"{endpoint}/_aws/execute-api/{api_id}{parsed.path.rstrip('/')}"


def use_stack(stack: str) -> dict[str, str]:
    """Point this process at a deployed stack: its resources' names from the stack outputs.

    With `make deploy-local` running and ``stack`` its name, at the local emulator; otherwise at
    AWS with the ambient credentials and region."""
    import boto3

    local = LocalDeployment.load()
    if local is not None and local.stack == stack and not os.environ.get("AWS_ENDPOINT_URL"):
        os.environ.update(local.environment())
    client = boto3.client("cloudformation")
    variables = environment_from_outputs(stack_outputs(client, stack))
    if local is not None and os.environ.get("AWS_ENDPOINT_URL") == local.endpoint and "CDP_URL" in variables:
        variables["CDP_URL"] = local_collector_url(variables["CDP_URL"], local.endpoint)
    variables["CDP_STACK"] = stack
    os.environ.update(variables)
    return variables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdp_infra.deployed")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("deploy", help="sam build + sam deploy of template.yaml to ministack on 127.0.0.1")
    up.add_argument("--stack", default=DEFAULT_STACK)
    up.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a template parameter override (Architecture defaults to the host's)")
    sub.add_parser("stop", help="stop the emulator that deploy started")
    args = parser.parse_args(argv)
    if args.command == "stop":
        print("emulator stopped" if stop_emulator() else "no emulator was running")
        return 0
    try:
        state = deploy(args.stack, dict(p.split("=", 1) for p in args.param))
    except EmulatorUnavailable as exc:
        print(f"local deploy unavailable: {exc}", file=sys.stderr)
        return 2
    print(f"stack {state.stack} deployed to {state.endpoint} ({json.dumps(state.timings)})")
    print(f"  cdp --stack {state.stack} status       # or: make test-deployed")
    print("  make emulator-stop                     # stops the emulator (its state is in memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
