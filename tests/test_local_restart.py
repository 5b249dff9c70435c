"""Stopping and restarting the local stack with the same state directory."""

from __future__ import annotations

import json
from pathlib import Path

from chalicelib.blueprint import load_blueprint
from service.local.stack import LocalStack
from tests.test_local_stack import BLUEPRINT, BUCKET, Job, options, submit, wait_for


def test_a_restart_keeps_every_object_and_fails_interrupted_jobs(tmp_path: Path) -> None:
    with LocalStack(options(tmp_path)) as first:
        first.deploy(load_blueprint(BLUEPRINT))
        job = submit(first, "r1", "hang", {"kept.bin": b"precious"}, __duration__=600)
        wait_for(lambda: job.reported("kept.bin") == "IN PROGRESS")

    with LocalStack(options(tmp_path)) as second:
        second.deploy(load_blueprint(BLUEPRINT))
        s3 = second.client("s3")
        assert s3.get_object(Bucket=BUCKET, Key="lab/inputs/kept.bin")["Body"].read() == b"precious"
        record = wait_for(lambda: (r := Job(second, "r1").record())["state"] != "RUNNING" and r)
        assert record["state"] == "FAILED"
        status = json.loads(Job(second, "r1").read("logs/DATASET_NAME:kept.bin_STATUS.txt"))
        assert "local stack stopped while this dataset was running" in status["reason"]
