"""The local stack as an initialised account (issue 16) and its runner's promises (issue 13):
what blueprints reference is provisioned, a launch refused for a missing thing names it, no
submission vanishes silently, nothing of a cancelled job starts, ended instances drop their disk."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.blueprint import load_blueprint
from service.local.stack import LocalStack, LocalStackOptions
from tests.conftest import FIXTURES, NEUROCAAS_BLUEPRINTS, wait_for

ECHO = "echo-analysis"
DLC = "dlc2-ncap-web"  # unedited NeuroCAAS blueprint: SSMRole, a key pair, a security group, an AMI


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    logged: list[str] = []
    options = LocalStackOptions(state_dir=tmp_path_factory.mktemp("stack"), slots=1, minute_seconds=1.0,
                                status_interval=0.5, log=logged.append)
    with LocalStack(options) as running:
        running.deploy(load_blueprint(FIXTURES / "echo_analysis"))
        running.deploy(load_blueprint(NEUROCAAS_BLUEPRINTS / "dlc2_web_stack"))
        running.logged = logged  # type: ignore[attr-defined]
        yield running


def submit(stack: LocalStack, bucket: str, group: str, job: str, datasets: list[str], **config: Any) -> str:
    s3 = stack.client("s3")
    for name in datasets:
        s3.put_object(Bucket=bucket, Key=f"{group}/inputs/{name}", Body=b"12345")
    s3.put_object(Bucket=bucket, Key=f"{group}/configs/{job}.json", Body=json.dumps(config).encode())
    s3.put_object(Bucket=bucket, Key=f"{group}/submissions/{job}_submit.json", Body=json.dumps({
        "dataname": [f"{group}/inputs/{n}" for n in datasets], "configname": f"{group}/configs/{job}.json",
        "timestamp": job}).encode())
    return f"{group}/results/job__{bucket}_{job}/logs"


def read(stack: LocalStack, bucket: str, key: str) -> str | None:
    s3 = stack.client("s3")
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    except s3.exceptions.NoSuchKey:
        return None


def test_what_an_unedited_blueprint_references_exists_and_its_jobs_launch(stack: LocalStack) -> None:
    iam, ec2 = stack.client("iam"), stack.client("ec2")
    profile = iam.get_instance_profile(InstanceProfileName="SSMRole")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["SSMRole"]
    assert ec2.describe_key_pairs(KeyNames=["testkeystack-custom-dev-key-pair"])["KeyPairs"]
    assert ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [
        "testsgstack-SecurityGroupDeploy-C2Q3PGSF77Y3"]}])["SecurityGroups"]
    assert ec2.describe_images(ImageIds=["ami-0701294339d3042ae"])["Images"]
    assert any("created what the blueprint references: instance profile SSMRole (IAM_ROLE); key pair"
               in line for line in stack.logged)  # type: ignore[attr-defined]

    logs = submit(stack, DLC, "debuggers", "launch1", ["video.mp4"])

    certificate = wait_for(lambda: (c := read(stack, DLC, f"{logs}/certificate.txt")) and "STEP 4/4" in c and c)
    assert "STEP 4/4 (Initialize Processing): DONE" in certificate, certificate


def test_a_launch_refused_for_a_missing_key_pair_names_it(stack: LocalStack) -> None:
    ec2 = stack.client("ec2")
    ec2.delete_key_pair(KeyName="testkeystack-custom-dev-key-pair")
    try:
        logs = submit(stack, DLC, "debuggers", "nokey1", ["video.mp4"])
        certificate = wait_for(lambda: (c := read(stack, DLC, f"{logs}/certificate.txt")) and "STEP 4/4" in c and c)
    finally:
        ec2.create_key_pair(KeyName="testkeystack-custom-dev-key-pair")

    assert "key pair 'testkeystack-custom-dev-key-pair' (KEY_NAME)" in certificate, certificate
    assert "correct KEY_NAME in the blueprint" in certificate


def test_a_submission_the_handler_cannot_handle_is_logged_and_certified(stack: LocalStack,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a defect")

    monkeypatch.setattr("chalicelib.handlers.JobManager.handle_submit", broken)
    logs = submit(stack, ECHO, "lab", "broken1", ["a.bin"], mode="ok")

    certificate = wait_for(lambda: read(stack, ECHO, f"{logs}/certificate.txt"))
    assert "STEP 1/4 (Initialization): INTERNAL ERROR. The job manager failed unexpectedly." in certificate
    assert "SUBMIT FILE: lab/submissions/broken1_submit.json" in certificate
    wait_for(lambda: any("broken1_submit.json: the handler failed (attempt 1 of 3" in line
                         for line in stack.logged))  # type: ignore[attr-defined]


def test_a_command_with_a_shell_comment_still_runs_every_submission(stack: LocalStack) -> None:
    from chalicelib.blueprint import Blueprint

    path = FIXTURES / "echo_analysis" / "stack_config_template.json"
    document = json.loads(path.read_text())
    document["PipelineName"] = "echo-commented"
    config = document["Lambda"]["LambdaConfig"]
    config["COMMAND"] = config["COMMAND"] + "  # hand-written: run the analysis, then clean up"
    stack.deploy(Blueprint.from_document(document, path=path))

    logs = submit(stack, "echo-commented", "lab", "hash1", ["c.bin"], mode="ok")

    record = wait_for(lambda: (r := read(stack, "echo-commented", f"{logs}/job.json")) and json.loads(r)["state"] in (
        "SUCCEEDED", "FAILED") and json.loads(r))
    assert record["state"] == "SUCCEEDED", read(stack, "echo-commented", f"{logs}/certificate.txt")


def test_a_malformed_event_is_logged_and_later_submissions_still_run(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=stack.served[ECHO].queue_url, MessageBody="not an S3 event")
    sqs.send_message(QueueUrl=stack.served[ECHO].queue_url, MessageBody=json.dumps({"Records": [{"s3": {}}]}))

    logs = submit(stack, ECHO, "lab", "after1", ["b.bin"], mode="ok")

    record = wait_for(lambda: (r := read(stack, ECHO, f"{logs}/job.json")) and json.loads(r)["state"] in (
        "SUCCEEDED", "FAILED") and json.loads(r))
    assert record["state"] == "SUCCEEDED"
    assert any("not an S3 event" in line for line in stack.logged)  # type: ignore[attr-defined]
    assert any("could not be delivered" in line for line in stack.logged)  # type: ignore[attr-defined]


def test_after_a_cancel_no_waiting_instance_starts_and_ended_ones_drop_their_disk(stack: LocalStack) -> None:
    # One slot: the first instance runs (and hangs), the second waits for the slot.
    logs = submit(stack, ECHO, "lab", "cancel2", ["x.bin", "y.bin"], mode="hang", __duration__=600)
    record = wait_for(lambda: (r := read(stack, ECHO, f"{logs}/job.json")) and len(json.loads(r)["instance_ids"]) == 2
                      and json.loads(r))
    running = wait_for(lambda: [i for i in record["instance_ids"]
                                if (stack.state_dir / "instances" / i / "console.log").exists()])
    waiting = [i for i in record["instance_ids"] if i not in running]
    assert len(running) == 1 and len(waiting) == 1

    stack.client("s3").put_object(Bucket=ECHO, Key="lab/submissions/stop_cancel.json",
                                  Body=json.dumps({"timestamp": "cancel2"}).encode())

    journal = stack.state_dir / "instances.json"
    wait_for(lambda: all(json.loads(journal.read_text()).get(i, {}).get("state") == "terminated"
                         for i in record["instance_ids"]))
    entries = json.loads(journal.read_text())
    assert entries[waiting[0]]["ended"] == "terminated before it started"
    assert not (stack.state_dir / "instances" / waiting[0] / "console.log").exists()
    ran = stack.state_dir / "instances" / running[0]
    wait_for(lambda: not (ran / "home").exists())
    assert (ran / "console.log").exists() and not (ran / "work").exists()


def test_local_up_maps_an_ami_to_a_stand_in_image_folder(tmp_path: Path) -> None:
    import typer

    from service.cli_local import parse_images

    assert parse_images([f"ami-0123456789abcdef0={tmp_path}"]) == {"ami-0123456789abcdef0": tmp_path}
    for bad in (str(tmp_path), f"ami-0123456789abcdef0={tmp_path / 'missing'}", f"image={tmp_path}"):
        with pytest.raises(typer.Exit):
            parse_images([bad])
