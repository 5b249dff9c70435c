"""The whole developer loop on the embedded local stack, and the guards around it.

A bare workspace is launched, a small analysis is installed into it, a local submit.json runs on it
through the job manager's own planning, the workspace is saved as an image and written into a git
blueprint, and a real job launched from the updated blueprint runs on that image.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.blueprint import load_blueprint
from devtools import DevToolsError, NeuroCAASAMI
from devtools.exceptions import NoInstance, UnsavedWork
from service.local.stack import LocalStack, LocalStackOptions
from tests.conftest import FIXTURES, wait_for

BUCKET = "echo-analysis"
ANALYSIS = (FIXTURES / "echo_analysis" / "image" / "analysis.sh").read_text()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # One "minute" of lifetime lasts one second here.
    options = LocalStackOptions(state_dir=tmp_path_factory.mktemp("stack"), minute_seconds=1.0, status_interval=0.5,
                                log=lambda _: None)
    with LocalStack(options) as running:
        running.deploy(load_blueprint(FIXTURES / "echo_analysis"))
        yield running


def git(repository: Path, *arguments: str) -> str:
    return subprocess.run(["git", "-C", str(repository), *arguments], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def blueprint(tmp_path: Path) -> Path:
    """A copy of the echo blueprint in a git repository of its own."""
    repository = tmp_path / "analyses"
    folder = repository / "blueprints" / "echo"
    shutil.copytree(FIXTURES / "echo_analysis", folder)
    git(repository, "init", "-q")
    git(repository, "config", "user.email", "dev@example.org")
    git(repository, "config", "user.name", "Developer")
    git(repository, "add", ".")
    git(repository, "commit", "-q", "-m", "the echo analysis")
    return folder


def upload(stack: LocalStack, job_id: str, mode: str = "ok") -> None:
    s3 = stack.client("s3")
    s3.put_object(Bucket=BUCKET, Key=f"lab/inputs/{job_id}.bin", Body=b"123456")
    s3.put_object(Bucket=BUCKET, Key=f"lab/configs/{job_id}.json", Body=json.dumps({"mode": mode}).encode())


def submit_file(tmp_path: Path, job_id: str) -> Path:
    path = tmp_path / f"{job_id}_submit.json"
    path.write_text(json.dumps({"dataname": [f"lab/inputs/{job_id}.bin"], "configname": f"lab/configs/{job_id}.json",
                                "timestamp": job_id}))
    return path


def read(stack: LocalStack, key: str) -> str:
    return stack.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()


def test_the_whole_developer_loop(stack: LocalStack, blueprint: Path, tmp_path: Path) -> None:
    dev = NeuroCAASAMI(blueprint, stack=stack, say=lambda _: None)

    # A bare machine: the workspace holds only the remote scripts.
    instance = dev.launch_ami("ubuntu22", lifetime=600)
    workspace = Path(instance.address)
    assert instance.state == "running" and workspace.is_dir() and dev.ip == str(workspace)
    assert (workspace / "neurocaas_remote" / "run_main.sh").exists() and not (workspace / "analysis.sh").exists()

    # Without the analysis the job fails, with the job manager's own records saying why.
    upload(stack, "dev0")
    dev.submit_job_log(submit_file(tmp_path, "dev0"))
    assert wait_for(lambda: (r := dev.job_status()).done and r).status == "FAILED"

    # The developer installs the analysis into the workspace and runs a submission on it.
    (workspace / "analysis.sh").write_text(ANALYSIS)
    upload(stack, "dev1")
    job = dev.submit_job_log(submit_file(tmp_path, "dev1"))
    report = wait_for(lambda: (r := dev.job_status()).done and r)
    assert report.status == "SUCCESS" and report.commands == {"dev1.bin": "Success"}
    prefix = f"lab/results/job__{BUCKET}_dev1"
    assert job.prefix == prefix
    assert read(stack, f"{prefix}/process_results/dev1.bin.size.txt").strip() == "6"
    certificate = read(stack, f"{prefix}/logs/certificate.txt")
    assert "STEP 2/4 (Validation): DONE" in certificate and "development instance" in certificate
    assert "| STATUS: SUCCESS |" in certificate
    record = json.loads(read(stack, f"{prefix}/logs/job.json"))
    # The development instance outlives the job: the job waits for no instance, only its datasets.
    assert record["state"] == "SUCCEEDED" and record["instance_ids"] == []
    assert {d["instance_id"] for d in record["datasets"].values()} == {instance.instance_id}
    assert "analysing dev1.bin" in dev.job_output()["dev1.bin"]["stdout"]
    assert dev.check_running()  # the command's power-off ended the run, not the instance

    # Save it, write it into the blueprint with a commit before and one after.
    head = git(blueprint, "rev-parse", "HEAD")
    tuned = ANALYSIS + "# tuned on the development instance\n"
    (workspace / "analysis.sh").write_text(tuned)
    ami = dev.create_image("echo analysis v2")
    assert dev.instance_saved and dev.ami_hist[-1]["ImageId"] == ami
    update = dev.update_blueprint(message="install the echo analysis")
    assert git(blueprint, "rev-parse", "HEAD~2") == head
    assert git(blueprint, "rev-parse", "HEAD~1") == update.before and git(blueprint, "rev-parse", "HEAD") == update.after
    assert "install the echo analysis" in git(blueprint, "log", "-1", "--format=%B")
    assert "install the echo analysis" in git(blueprint, "log", "-1", "--format=%B", "HEAD~1")
    updated = load_blueprint(blueprint)
    assert updated.settings.ami == ami and git(blueprint, "status", "--porcelain") == ""
    # The repository holds the image: the workspace's files are written into the blueprint's image folder and
    # committed with it; nothing points into the state folder, and the runner's own files are not copied.
    assert updated.local_image == blueprint / "image" and updated.document["LocalImage"] == "image"
    assert (blueprint / "image" / "analysis.sh").read_text() == tuned
    assert "image/analysis.sh" in git(blueprint, "show", "--name-only", "--format=", "HEAD")
    assert not (blueprint / "image" / "neurocaas_remote").exists()
    assert str(stack.state_dir) not in (blueprint / "stack_config_template.json").read_text()

    # A real job launched from the updated blueprint runs on the saved image.
    (workspace / "analysis.sh").unlink()  # only the saved image holds the analysis now
    stack.deploy(updated)
    upload(stack, "real1")
    stack.client("s3").put_object(Bucket=BUCKET, Key="lab/submissions/real1_submit.json",
                                  Body=submit_file(tmp_path, "real1").read_bytes())
    real = wait_for(lambda: _record(stack, "real1"))
    assert real["state"] == "SUCCEEDED" and real["ami"] == ami
    assert real["instance_ids"] != [instance.instance_id]
    assert read(stack, f"lab/results/job__{BUCKET}_real1/process_results/real1.bin.size.txt").strip() == "6"

    dev.terminate_devinstance()
    assert dev.instance is None and not workspace.exists()


def _record(stack: LocalStack, job_id: str) -> dict[str, Any] | None:
    try:
        record = json.loads(read(stack, f"lab/results/job__{BUCKET}_{job_id}/logs/job.json"))
    except stack.client("s3").exceptions.NoSuchKey:
        return None
    return record if record["state"] in ("SUCCEEDED", "FAILED") else None


def test_guards_lifetime_and_a_new_session(stack: LocalStack, blueprint: Path, tmp_path: Path) -> None:
    dev = NeuroCAASAMI(blueprint, stack=stack, say=lambda _: None)
    with pytest.raises(NoInstance):
        dev.terminate_devinstance()
    first = dev.launch_ami(lifetime=4)  # the blueprint's own AMI, laid out from its LocalImage
    assert (Path(first.address) / "analysis.sh").exists()

    with pytest.raises(DevToolsError, match="already has a development instance"):
        dev.launch_ami()
    with pytest.raises(UnsavedWork, match="never saved"):
        dev.terminate_devinstance()

    # A new session (as after restarting Python) picks up the same instance.
    again = NeuroCAASAMI(blueprint, stack=stack, say=lambda _: None)
    assert again.instance is not None and again.instance.instance_id == first.instance_id
    assert again.get_lifetime().minutes == 4
    assert again.extend_lifetime(2).minutes == 6

    # When its lifetime runs out the instance stops itself; its workspace is kept.
    stopped = wait_for(lambda: (i := dev.instance) is not None and i.state == "stopped" and i, seconds=15)
    assert stopped.instance_id == first.instance_id and Path(first.address).is_dir()
    with pytest.raises(DevToolsError, match="start it"):
        dev.submit_job_log(submit_file(tmp_path, "late"))
    assert dev.start_devinstance(lifetime=600).state == "running"
    assert dev.get_lifetime().remaining_minutes > 500

    second = dev.launch_ami("ubuntu18", lifetime=600, another=True)
    assert second.instance_id != first.instance_id and dev.instance_hist == [first.instance_id, second.instance_id]
    dev.terminate_devinstance(force=True)
    dev.assign_instance(first.instance_id)
    dev.terminate_devinstance(force=True)
    assert dev.check_clear()


def test_refusals_come_from_the_job_manager(stack: LocalStack, blueprint: Path, tmp_path: Path) -> None:
    dev = NeuroCAASAMI(blueprint, stack=stack, say=lambda _: None)
    dev.launch_ami(lifetime=600)
    try:
        missing = submit_file(tmp_path, "nodata")
        with pytest.raises(DevToolsError, match=r"Dataset\(s\) not found: lab/inputs/nodata.bin.*certificate"):
            dev.submit_job_log(missing)
        assert "Dataset(s) not found" in read(stack, f"lab/results/job__{BUCKET}_nodata/logs/certificate.txt")
        upload(stack, "twice")
        dev.submit_job_log(submit_file(tmp_path, "twice"))
        with pytest.raises(DevToolsError, match="already ran as a job"):
            dev.submit_job_log(submit_file(tmp_path, "twice"))
        assert wait_for(lambda: (r := dev.job_status()).done and r).status == "SUCCESS"
    finally:
        dev.terminate_devinstance(force=True)
