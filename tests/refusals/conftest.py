"""Shared setup of the refusal tests: one mocked account per module, emptied after each test
(listing moto's public images for every test made them slow), and the assertions they share."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.blueprint import AnalysisSettings
from chalicelib.jobmanager import Outcome, Result
from chalicelib.paths import refusal_job_name
from tests.conftest import BUCKET, COMMAND, GROUP, Analysis, Clock

JOB = "2026-11-25T10-00-00"
SUBMIT_KEY = f"{GROUP}/submissions/submit.json"
A = f"{GROUP}/inputs/a.tif"
B = f"{GROUP}/inputs/b.tif"
CONFIG = f"{GROUP}/configs/params.yaml"
REFUSAL_FOLDER = f"{GROUP}/results/{refusal_job_name(BUCKET, SUBMIT_KEY)}"


@pytest.fixture(scope="module")
def shared_analysis() -> Iterator[Analysis]:
    """conftest's ``analysis`` (same settings), made once for the module: listing moto's public
    images and making boto3 clients costs about a second per test, and these tests are many."""
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        yield Analysis(AnalysisSettings(
            bucket_name=BUCKET, ami=ami, instance_type="t2.micro",
            allowed_instance_types=("t2.micro", "m5.xlarge"), command=COMMAND,
            bypass_buckets=("shared-results",), maxcost=300, deploy_limit=100,
        ))


@pytest.fixture
def analysis(shared_analysis: Analysis) -> Iterator[Analysis]:
    """The shared analysis with a fresh clock; its account is emptied after each test."""
    made = shared_analysis
    made.clock = Clock()
    yield made
    live = [i["InstanceId"] for i in made.instances(("pending", "running", "stopping", "stopped"))]
    if live:
        made.ec2.terminate_instances(InstanceIds=live)
    for bucket in made.s3.list_buckets()["Buckets"]:
        for key in made.keys(bucket=bucket["Name"]):
            made.s3.delete_object(Bucket=bucket["Name"], Key=key)
        if bucket["Name"] != BUCKET:
            made.s3.delete_bucket(Bucket=bucket["Name"])
    names = [p["Name"] for p in made.ssm.describe_parameters().get("Parameters", ())]
    if names:
        made.ssm.delete_parameters(Names=names)


def refusal_certificate(analysis: Analysis, submit_key: str = SUBMIT_KEY) -> str:
    """The certificate of a submission without a usable job id, named after its submit key."""
    return analysis.get(f"{GROUP}/results/{refusal_job_name(BUCKET, submit_key)}/logs/certificate.txt")


def assert_refused(analysis: Analysis, result: Result, certificate: str, *fragments: str,
                   label: str = "SUBMISSION ERROR") -> None:
    assert result.outcome is Outcome.REFUSED, result
    assert analysis.instances() == []
    assert "Traceback" not in certificate
    assert f"{label}." in certificate, certificate
    for fragment in fragments:
        assert fragment in certificate, f"{fragment!r} not in certificate:\n{certificate}"
        assert fragment in result.message


def assert_refused_job(analysis: Analysis, result: Result, *fragments: str, job_id: str = JOB,
                       label: str = "SUBMISSION ERROR") -> None:
    """Refused under the job's own folder, with job.json saying FAILED and refused."""
    assert_refused(analysis, result, analysis.certificate(job_id), *fragments, label=label)
    record = analysis.record(job_id)
    assert record["state"] == "FAILED" and record["refused"] is True
    assert record["reason"] == result.message
    assert record["instance_ids"] == []
