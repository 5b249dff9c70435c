"""Applying a plan: each step in order, stopping at the first failure with one actionable line.

``chalice`` runs through an injectable runner (:data:`ChaliceRunner`): by default a subprocess
in the project folder with ``BUCKET_NAME`` and the region in its environment; tests pass a fake.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from service.deploy.awsstate import Clients, aws_error
from service.deploy.changes import (
    Call,
    Chalice,
    Change,
    EmptyBucket,
    Plan,
    Ref,
    Step,
    WriteFile,
)
from service.deploy.exceptions import DeployError
from service.deploy.runtime import RUNTIME_VARIABLE

ChaliceRunner = Callable[[Sequence[str], Path, Mapping[str, str]], int]
"""Runs ``chalice ARGS`` in a folder with extra environment variables; returns the exit code."""


def chalice_command() -> list[str]:
    """``chalice`` run by this Python through :mod:`service.deploy.runtime` (which sets the runtime)."""
    if importlib.util.find_spec("chalice") is None:
        raise DeployError("Chalice is not installed: run `pip install chalice` (or install this project with pip) "
                          "and deploy again.")
    return [sys.executable, "-m", "service.deploy.runtime"]


def run_chalice(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
    """Run the real ``chalice`` with its output going to the terminal."""
    return subprocess.run([*chalice_command(), *args], cwd=cwd, env={**os.environ, **env}, check=False).returncode


def _resolve(value: Any, outputs: Mapping[str, Any]) -> Any:
    if isinstance(value, Ref):
        return outputs[value.name]
    if isinstance(value, dict):
        return {k: _resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, outputs) for v in value]
    return value


def _dig(response: Mapping[str, Any], path: str) -> Any:
    value: Any = response
    for part in path.split("."):
        value = value[part]
    return value


class Executor:
    """Applies plans with one account's clients."""

    def __init__(self, clients: Clients, chalice: ChaliceRunner = run_chalice) -> None:
        self.clients, self.chalice = clients, chalice

    def apply(self, plan: Plan) -> None:
        outputs: dict[str, Any] = {}
        for change in plan.changes:
            for step in change.steps:
                self._step(change, step, outputs)

    def _step(self, change: Change, step: Step, outputs: dict[str, Any]) -> None:
        if isinstance(step, Call):
            self._call(change, step, outputs)
        elif isinstance(step, WriteFile):
            _write(step)
        elif isinstance(step, Chalice):
            env = {"BUCKET_NAME": step.bucket, "AWS_DEFAULT_REGION": step.region, "AWS_REGION": step.region,
                   RUNTIME_VARIABLE: step.runtime}
            status = self.chalice(list(step.args), step.project, env)
            if status != 0:
                raise DeployError(f"`chalice {' '.join(step.args)}` failed (exit code {status}); its output is above. "
                                  "Fix the problem and run the command again.")
        elif isinstance(step, EmptyBucket):
            self._empty(step.bucket)

    def _call(self, change: Change, call: Call, outputs: dict[str, Any]) -> None:
        try:
            response = getattr(self.clients(call.service), call.operation)(**_resolve(call.params, outputs))
        except (ClientError, BotoCoreError) as error:
            raise aws_error(f"{call.service}:{call.operation} while changing {change.target}", error) from error
        for name, path in call.save.items():
            outputs[name] = _dig(response, path)

    def _empty(self, bucket: str) -> None:
        s3 = self.clients("s3")
        try:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                objects = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                           for o in [*page.get("Versions", ()), *page.get("DeleteMarkers", ())]]
                for start in range(0, len(objects), 1000):
                    s3.delete_objects(Bucket=bucket, Delete={"Objects": objects[start:start + 1000], "Quiet": True})
        except (ClientError, BotoCoreError) as error:
            raise aws_error(f"emptying the bucket {bucket}", error) from error


def _write(step: WriteFile) -> None:
    try:
        if step.content is None:
            step.path.unlink(missing_ok=True)
        else:
            step.path.parent.mkdir(parents=True, exist_ok=True)
            step.path.write_text(step.content)
    except OSError as error:
        raise DeployError(f"Cannot {'remove' if step.content is None else 'write'} {step.path}: "
                          f"{error.strerror or error}.") from error
