"""End to end on the embedded local stack: a real moto server on loopback, real subprocess instances."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.blueprint import load_blueprint
from service.local.stack import LocalStack, LocalStackOptions
from tests.conftest import FIXTURES, wait_for

BLUEPRINT = FIXTURES / "echo_analysis"
BUCKET = "echo-analysis"


def options(state_dir: Path) -> LocalStackOptions:
    # One "minute" of instance lifetime lasts one second here, so a hang times out quickly.
    return LocalStackOptions(state_dir=state_dir, minute_seconds=1.0, status_interval=0.5, log=lambda _: None)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(options(tmp_path_factory.mktemp("stack"))) as running:
        running.deploy(load_blueprint(BLUEPRINT))
        yield running


class Job:
    def __init__(self, stack: LocalStack, job_id: str) -> None:
        self.s3, self.job_id = stack.client("s3"), job_id
        self.prefix = f"lab/results/job__{BUCKET}_{job_id}"

    def read(self, relative: str) -> str:
        return self.s3.get_object(Bucket=BUCKET, Key=f"{self.prefix}/{relative}")["Body"].read().decode()

    def record(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.read("logs/job.json"))
        except self.s3.exceptions.NoSuchKey:
            return None

    def reported(self, dataset: str) -> str | None:
        """The state the dataset's instance reported in its status file (the only object it writes)."""
        try:
            return json.loads(self.read(f"logs/DATASET_NAME:{dataset}_STATUS.txt"))["status"]
        except self.s3.exceptions.NoSuchKey:
            return None

    def finished(self, seconds: float = 30) -> dict[str, Any]:
        return wait_for(lambda: (r := self.record()) and r["state"] in ("SUCCEEDED", "FAILED") and r, seconds)


def submit(stack: LocalStack, job_id: str, mode: str, datasets: dict[str, bytes], **config: Any) -> Job:
    s3 = stack.client("s3")
    for name, body in datasets.items():
        s3.put_object(Bucket=BUCKET, Key=f"lab/inputs/{name}", Body=body)
    s3.put_object(Bucket=BUCKET, Key=f"lab/configs/{job_id}.json", Body=json.dumps({"mode": mode, **config}).encode())
    submit_file = {"dataname": [f"lab/inputs/{n}" for n in datasets], "configname": f"lab/configs/{job_id}.json",
                   "timestamp": job_id}
    s3.put_object(Bucket=BUCKET, Key=f"lab/submissions/{job_id}_submit.json", Body=json.dumps(submit_file).encode())
    return Job(stack, job_id)


def instance_states(stack: LocalStack, job_id: str) -> list[str]:
    pages = stack.client("ec2").get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:job", "Values": [f"job__{BUCKET}_{job_id}"]}])
    return [i["State"]["Name"] for p in pages for r in p["Reservations"] for i in r["Instances"]]


def test_a_neurocaas_style_job_runs_to_success_with_results(stack: LocalStack) -> None:
    job = submit(stack, "ok1", "ok", {"one.bin": b"12345", "two.bin": b"1234567"})

    record = job.finished()

    assert record["state"] == "SUCCEEDED"
    assert job.read("process_results/one.bin.size.txt").strip() == "5"
    status = json.loads(job.read("logs/DATASET_NAME:two.bin_STATUS.txt"))
    assert status["status"] == "SUCCESS" and "done" in status["std"].values()
    variables = dict(line.split("=", 1) for line in job.read("process_results/one.bin.variables.txt").splitlines())
    assert variables == {
        "bucketname": BUCKET, "inputpath": "lab/inputs/one.bin", "configpath": "lab/configs/ok1.json",
        "dataname": "one.bin", "configname": "ok1.json", "groupdir": "lab",
        "resultdir": f"results/job__{BUCKET}_ok1", "processdir": f"results/job__{BUCKET}_ok1/process_results",
    }
    certificate = job.read("logs/certificate.txt")
    assert certificate.count("| STATUS: SUCCESS |") == 2 and "(finished)" in certificate
    # The image holds no remote side: each instance installed it from the bucket, as on EC2.
    boot_log = wait_for(lambda: _read_or_none(job, "internal_ec2_logs/one.bin-0.log"))
    assert "installing the remote side" in boot_log
    assert "analysing one.bin" in job.read("internal_ec2_logs/one.bin.log")
    wait_for(lambda: instance_states(stack, "ok1") == ["terminated", "terminated"])


def test_a_failing_analysis_ends_failed_with_its_stderr(stack: LocalStack) -> None:
    job = submit(stack, "fail1", "fail", {"bad.bin": b"x"})

    record = job.finished()

    assert record["state"] == "FAILED"
    status = json.loads(job.read("logs/DATASET_NAME:bad.bin_STATUS.txt"))
    assert status["status"] == "FAILED"
    assert status["reason"] == ("The analysis exited with code 3 after printing: something went wrong in the "
                                "analysis. Its whole output is in internal_ec2_logs/bad.bin.log in the job's folder.")
    assert "something went wrong in the analysis" in status["std"].values()
    assert "something went wrong" in job.read("internal_ec2_logs/bad.bin.log")
    wait_for(lambda: instance_states(stack, "fail1") == ["terminated"])


def test_a_hung_analysis_times_out_and_its_instance_ends(stack: LocalStack) -> None:
    job = submit(stack, "hang1", "hang", {"slow.bin": b"x"}, __duration__=2)

    record = job.finished()

    assert record["datasets"]["slow.bin"]["state"] == "TIMED OUT"
    status = json.loads(job.read("logs/DATASET_NAME:slow.bin_STATUS.txt"))
    assert status["status"] == "TIMED OUT" and "lifetime of 2 minutes" in status["reason"]
    assert "STATUS: TIMED OUT" in job.read("logs/certificate.txt")
    wait_for(lambda: instance_states(stack, "hang1") == ["terminated"])


def test_a_neurocaas_style_analysis_using_the_aws_cli_runs_unchanged(stack: LocalStack, tmp_path: Path) -> None:
    import importlib.util
    import io

    import numpy as np

    root = Path(__file__).parents[1] / "blueprints" / "ephys-spikes"
    stack.deploy(load_blueprint(root))
    spec = importlib.util.spec_from_file_location("make_example", root / "image" / "spikes" / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    traces, truth = module.make(seed=3)
    buffer = io.BytesIO()
    np.savez(buffer, traces=traces, fs=20000.0)
    s3 = stack.client("s3")
    s3.put_object(Bucket="ephys-spikes", Key="ephyslab/inputs/rec1.npz", Body=buffer.getvalue())
    s3.put_object(Bucket="ephys-spikes", Key="ephyslab/configs/params.yaml", Body=(root / "image" / "params.yaml").read_bytes())
    s3.put_object(Bucket="ephys-spikes", Key="ephyslab/submissions/submit.json", Body=json.dumps(
        {"dataname": ["ephyslab/inputs/rec1.npz"], "configname": "ephyslab/configs/params.yaml", "timestamp": "e1"}).encode())
    prefix = "ephyslab/results/job__ephys-spikes_e1"

    def ended() -> dict[str, Any] | None:
        try:
            record = json.loads(s3.get_object(Bucket="ephys-spikes", Key=f"{prefix}/logs/job.json")["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None
        return record if record["state"] in ("SUCCEEDED", "FAILED") else None

    assert wait_for(ended)["state"] == "SUCCEEDED"
    spikes = s3.get_object(Bucket="ephys-spikes", Key=f"{prefix}/process_results/rec1/spikes.csv")["Body"].read().decode()
    found = [line.split(",") for line in spikes.strip().splitlines()[1:]]
    true_count = sum(len(times) for times in truth.values())
    matched = sum(any(abs(float(t) - s) < 0.001 for s in truth[int(c)]) for c, t, _ in found)
    assert matched / true_count > 0.9 and matched / len(found) > 0.9
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ephys-spikes", Prefix=f"{prefix}/internal_ec2_logs/")["Contents"]]
    assert f"{prefix}/internal_ec2_logs/rec1.npz.log" in keys


def test_the_runner_feeds_the_monitor_cost_records_and_end_txt(stack: LocalStack) -> None:
    job = submit(stack, "cost1", "ok", {"c1.bin": b"1", "c2.bin": b"2"})
    job.finished()

    end = wait_for(lambda: _read_or_none(job, "process_results/end.txt"))

    assert "actual cost $" in end
    record = wait_for(lambda: (r := job.record()) and r["actual_cost"] is not None and r)
    s3 = stack.client("s3")
    for instance_id in record["instance_ids"]:
        history = json.loads(s3.get_object(Bucket=BUCKET, Key=f"logs/lab/{instance_id}.json")["Body"].read())
        assert history["job"] == f"job__{BUCKET}_cost1" and history["end"]
    active = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="logs/active/").get("Contents", ())}
    assert not active & {f"logs/active/{i}.json" for i in record["instance_ids"]}
    assert "ACTUAL COST:" in job.read("logs/certificate.txt")


def test_a_cancel_file_in_s3_cancels_a_running_job(stack: LocalStack) -> None:
    job = submit(stack, "cancel1", "hang", {"long.bin": b"x"}, __duration__=600)
    wait_for(lambda: job.reported("long.bin") == "IN PROGRESS")

    stack.client("s3").put_object(Bucket=BUCKET, Key="lab/submissions/stop_cancel.json",
                                  Body=json.dumps({"timestamp": "cancel1"}).encode())

    record = wait_for(lambda: (r := job.record()) and r["state"] == "CANCELLED" and r)
    assert record["datasets"]["long.bin"]["state"] == "CANCELLED"
    wait_for(lambda: instance_states(stack, "cancel1") == ["terminated"])


def _read_or_none(job: Job, relative: str) -> str | None:
    try:
        return job.read(relative)
    except job.s3.exceptions.NoSuchKey:
        return None
