"""On the local stack: an injected Spot interruption, its relaunch, the checkpoint it resumes from,
and the whole cycle as `neurocaas status` shows it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from chalicelib.blueprint import load_blueprint
from chalicelib.records import JobRecord
from service import cli
from service.client import JobRef
from service.local.stack import LocalStack, LocalStackOptions
from service.statusfile import read_status
from service.views import job_table
from tests.conftest import FIXTURES, wait_for
from tests.test_local_stack import BUCKET, Job, submit


def status(job: Job) -> dict[str, Any]:
    """The dataset's status file as it stands ({} before the first report)."""
    try:
        return dict(json.loads(job.read("logs/DATASET_NAME:movie.bin_STATUS.txt")))
    except job.s3.exceptions.NoSuchKey:
        return {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    options = LocalStackOptions(state_dir=tmp_path_factory.mktemp("spot"), minute_seconds=1.0, status_interval=0.5,
                                log=lambda _: None)
    blueprint = load_blueprint(FIXTURES / "echo_analysis")
    spot = blueprint.model_copy(update={"settings": blueprint.settings.model_copy(update={"spot": "prefer"})})
    with LocalStack(options) as running:
        running.deploy(spot)
        yield running


def test_an_injected_interruption_relaunches_from_the_checkpoint_and_status_shows_the_cycle(
        stack: LocalStack, tmp_path: Path) -> None:
    job = submit(stack, "cp1", "checkpoint", {"movie.bin": b"frames"}, __duration__=60)
    first = wait_for(lambda: "working" in status(job).get("command", "") and job.record()["datasets"]["movie.bin"]["instance_id"])
    checkpoint = f"{job.prefix}/process_results/checkpoints/movie.bin/progress.txt"
    wait_for(lambda: job.s3.list_objects_v2(Bucket=BUCKET, Prefix=checkpoint).get("KeyCount"))  # saved as it went

    asked = CliRunner().invoke(cli.app, ["local", "interrupt", first, "--state-dir", str(stack.state_dir)])
    assert asked.exit_code == 0 and "Interruption of" in asked.output

    notice = stack.state_dir / "instances" / first / "work" / "movie.bin" / "interruption-notice.json"
    wait_for(notice.exists)
    assert json.loads(notice.read_text())["action"] == "terminate"  # given to the analysis before the reclaim

    record = job.finished(60)
    assert record["state"] == "SUCCEEDED", status(job)
    attempts = record["datasets"]["movie.bin"]["attempts"]
    assert [a["capacity"] for a in attempts] == ["spot", "spot"] and attempts[0]["instance_id"] == first, attempts
    assert attempts[0]["ended"].startswith("Spot interruption warning at")
    final = status(job)  # the relaunched instance's own report keeps the attempts
    assert final["status"] == "SUCCESS" and [a["instance"] for a in final["attempts"]] == [a["instance_id"] for a in attempts]
    assert job.read("process_results/movie.bin.resumed.txt").strip() == "half of movie.bin"
    assert job.read("process_results/checkpoints/movie.bin/progress.txt").strip() == "half of movie.bin"
    certificate = job.read("logs/certificate.txt")
    assert certificate.count("ACTUAL COST") == 1 and "attempt 2 on" in certificate
    assert job.read("process_results/end.txt")
    refused = CliRunner().invoke(cli.app, ["local", "interrupt", "i-0000", "--state-dir", str(stack.state_dir)])
    assert refused.exit_code == 1 and "has run no instance i-0000" in refused.output

    console = Console(record=True, width=200)
    ref = JobRef(BUCKET, "lab", "cp1", BUCKET, job.prefix)
    shown = JobRecord.model_validate(record)
    console.print(job_table(ref, shown, {"movie.bin": read_status(job.read("logs/DATASET_NAME:movie.bin_STATUS.txt"))},
                            width=200))
    text = console.export_text()
    assert "SUCCEEDED" in text and "(attempt 2)" in text and "Capacity and attempts:" in text
    assert "ended: Spot interruption warning" in text
