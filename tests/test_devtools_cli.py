"""``neurocaas develop ...`` against a live local stack found through its connection file, as a developer runs it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chalicelib.blueprint import load_blueprint
from service.cli import app
from service.connection import connect
from tests.conftest import FIXTURES, echo_stack_home

BUCKET = "echo-analysis"
runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with echo_stack_home(tmp_path_factory.mktemp("neurocaas-home")) as running:
        yield running


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv("NEUROCAAS_HOME", str(home))
    monkeypatch.delenv("NEUROCAAS_TARGET", raising=False)

    def invoke(*args: str, input: str | None = None) -> Any:
        return runner.invoke(app, ["develop", *args], input=input)
    return invoke


@pytest.fixture
def blueprint(tmp_path: Path) -> str:
    folder = tmp_path / "repo" / "echo"
    shutil.copytree(FIXTURES / "echo_analysis", folder)
    for arguments in (["init", "-q"], ["config", "user.email", "d@example.org"], ["config", "user.name", "D"],
                      ["add", "."], ["commit", "-q", "-m", "echo"]):
        subprocess.run(["git", "-C", str(folder.parent), *arguments], check=True, capture_output=True)
    return str(folder)


def wait_for(check: Callable[[], Any], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.3)
    raise AssertionError("timed out waiting")


def test_the_develop_commands(cli: Callable[..., Any], blueprint: str, home: Path, tmp_path: Path) -> None:
    launched = cli("launch", blueprint, "--ami", "ubuntu16", "--lifetime", "600")
    assert launched.exit_code == 0, launched.output
    assert "Ubuntu 16.04 is end-of-life" in launched.output and "is running at" in launched.output
    refused = cli("launch", blueprint)
    assert refused.exit_code == 1 and "already has a development instance" in refused.output

    status = cli("status", blueprint)
    workspace = Path(re.search(r"running at (\S+)", status.output).group(1))
    assert workspace.is_dir() and "stops itself in" in cli("lifetime", blueprint).output
    assert "of its 630 minutes" in cli("extend", blueprint, "30").output

    (workspace / "analysis.sh").write_text((FIXTURES / "echo_analysis" / "image" / "analysis.sh").read_text())
    s3 = connect(state_dir=home / "local").client("s3")
    s3.put_object(Bucket=BUCKET, Key="lab/inputs/c1.bin", Body=b"1234")
    s3.put_object(Bucket=BUCKET, Key="lab/configs/c1.json", Body=json.dumps({"mode": "ok"}).encode())
    submit = tmp_path / "submit.json"
    submit.write_text(json.dumps({"dataname": ["lab/inputs/c1.bin"], "configname": "lab/configs/c1.json",
                                  "timestamp": "c1"}))
    submitted = cli("submit", blueprint, str(submit))
    assert submitted.exit_code == 0 and "Job c1 is running on" in submitted.output, submitted.output
    assert "estimated cost" in submitted.output  # the job manager's own plan, printed
    wait_for(lambda: "job c1: SUCCESS" in (o := cli("status", blueprint).output) and "command Success" in o)
    assert "analysing c1.bin" in cli("output", blueprint).output

    unsaved = cli("terminate", blueprint)
    assert unsaved.exit_code == 1 and "never saved as an image" in unsaved.output
    declined = cli("terminate", blueprint, "--force", input="n\n")
    assert declined.exit_code == 1 and "will be lost" in declined.output and workspace.is_dir()

    assert cli("create-image", blueprint, "echo-cli").exit_code == 0
    updated = cli("update-blueprint", blueprint, "-m", "from the command line")
    assert updated.exit_code == 0 and "Blueprint updated" in updated.output
    assert load_blueprint(blueprint).settings.ami != load_blueprint(FIXTURES / "echo_analysis").settings.ami

    stopped = cli("stop", blueprint, input="y\n")
    assert stopped.exit_code == 0 and "is stopped" in stopped.output
    assert "is running" in cli("start", blueprint, "--lifetime", "600").output
    assert cli("terminate", blueprint, "--yes").exit_code == 0
    assert "no development instance" in cli("status", blueprint).output


def test_without_a_stack_the_commands_say_how_to_start_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            blueprint: str) -> None:
    monkeypatch.setenv("NEUROCAAS_HOME", str(tmp_path / "nowhere"))
    result = runner.invoke(app, ["develop", "status", blueprint])
    assert result.exit_code == 1 and "neurocaas local up" in result.output
    missing = runner.invoke(app, ["develop", "status", str(tmp_path / "no-such-blueprint")])
    assert missing.exit_code == 1 and "Cannot read the blueprint" in missing.output
