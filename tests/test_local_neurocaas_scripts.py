"""Analyses packaged for NeuroCAAS run unchanged on the local stack (issue 16), end to end.

An unedited NeuroCAAS blueprint (cianalysispermastack: NeuroCAAS's run_main.sh + workflow.sh) and
one in neurocaas_contrib's CLI shape, both served with the stand-in image folder
tests/fixtures/neurocaas_image, whose scripts report only through status files. Through the user
commands: `status --once` exits 0 at every moment, the job ends SUCCEEDED or FAILED, `results`
finds what the scripts uploaded to s3://$bucketname/$groupdir/$processdir/, `logs -d` shows output.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chalicelib.blueprint import load_blueprint
from service.cli import app
from tests.conftest import FIXTURES, NEUROCAAS_BLUEPRINTS, wait_for

IMAGE = FIXTURES / "neurocaas_image"
REMOTE = ("cianalysispermastack", "traviscipermagroup")  # unedited, from NeuroCAAS's repository
CONTRIB = ("contrib-lab", "labgroup")  # tests/fixtures/neurocaas_shapes/contrib_cli
runner = CliRunner()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from service.connection import write_connection
    from service.local.stack import CREDENTIALS, REGION, LocalStack, LocalStackOptions

    root = tmp_path_factory.mktemp("neurocaas-home")
    logged: list[str] = []
    options = LocalStackOptions(state_dir=root / "local", minute_seconds=1.0, status_interval=0.5, log=logged.append)
    blueprints = [load_blueprint(NEUROCAAS_BLUEPRINTS / "cianalysispermastack"),
                  load_blueprint(FIXTURES / "neurocaas_shapes" / "contrib_cli")]
    with LocalStack(options) as stack:
        for blueprint in blueprints:
            stack.register_image(blueprint.settings.ami, IMAGE)  # the stand-in for the blueprint's AMI
            stack.deploy(blueprint)
        write_connection(stack.state_dir, stack.endpoint, CREDENTIALS, REGION, [b.name for b in blueprints])
        yield root
    assert not [line for line in logged if "failed" in line and "handler" in line], logged


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEUROCAAS_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return lambda *args: runner.invoke(app, list(args))


def run_job(cli: Any, tmp_path: Path, analysis: tuple[str, str], job: str, mode: str) -> dict[str, Any]:
    """Submit one dataset and follow it with `status --once` until job.json says it ended."""
    name, group = analysis
    data, config = tmp_path / "movie.bin", tmp_path / "config.json"
    data.write_bytes(b"0123456789abc")
    config.write_text(json.dumps({"mode": mode}))
    submitted = cli("submit", name, str(data), "-g", group, "-c", str(config), "--job-id", job)
    assert submitted.exit_code == 0, submitted.output
    wait_for(lambda: job_record(name, group, job), 20)  # accepted by the job manager
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = cli("status", job, "-a", name, "-g", group, "--once")
        assert status.exit_code == 0, status.output  # at every moment, whatever the scripts wrote
        record = job_record(name, group, job)
        if record and record["state"] in ("SUCCEEDED", "FAILED"):
            return record
        time.sleep(0.3)
    raise AssertionError(f"job {job} did not end: {status.output}")


def job_record(name: str, group: str, job: str) -> dict[str, Any] | None:
    from service.connection import connect

    s3 = connect(state_dir=Path(os.environ["NEUROCAAS_HOME"]) / "local").client("s3")
    try:
        body = s3.get_object(Bucket=name, Key=f"{group}/results/job__{name}_{job}/logs/job.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return json.loads(body)


@pytest.mark.parametrize("analysis", [REMOTE, CONTRIB], ids=["neurocaas-run_main", "contrib-run_main_cli"])
def test_a_job_of_original_scripts_succeeds_with_results_and_logs(cli, tmp_path: Path, analysis) -> None:
    name, group = analysis
    job = f"ok-{name[:7]}"

    record = run_job(cli, tmp_path, analysis, job, "ok")

    assert record["state"] == "SUCCEEDED", record
    results = cli("results", job, "-a", name, "-g", group, "-o", str(tmp_path / "out"))
    assert results.exit_code == 0, results.output
    assert (tmp_path / "out" / "size.txt").read_text().strip() == "13"
    assert json.loads((tmp_path / "out" / "config.json").read_text()) == {"mode": "ok"}
    logs = cli("logs", job, "-a", name, "-g", group, "-d", "movie.bin")
    assert logs.exit_code == 0 and "analysing movie.bin" in logs.output, logs.output


@pytest.mark.parametrize("analysis", [REMOTE, CONTRIB], ids=["neurocaas-run_main", "contrib-run_main_cli"])
def test_a_failing_analysis_of_original_scripts_ends_failed(cli, tmp_path: Path, analysis) -> None:
    name, group = analysis
    job = f"fail-{name[:7]}"

    record = run_job(cli, tmp_path, analysis, job, "fail")

    assert record["state"] == "FAILED", record
    logs = cli("logs", job, "-a", name, "-g", group, "-d", "movie.bin")
    assert logs.exit_code == 0 and "FAILED" in logs.output, logs.output
