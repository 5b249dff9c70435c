"""Failure in the middle: the user is told what failed and nothing is left running."""

from __future__ import annotations

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from chalicelib import bootscript, planner
from chalicelib.awsclient import AWSClient
from chalicelib.jobmanager import Outcome
from tests.conftest import GROUP, submit_doc

JOB = "2026-11-25T10-00-00"


def many_datasets(analysis, count: int) -> list[str]:
    keys = [f"{GROUP}/inputs/d{i:03d}.tif" for i in range(count)]
    for key in keys:
        analysis.put(key)
    return keys


def error(code: str, operation: str = "RunInstances") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


def test_a_launch_refused_part_way_stops_every_instance_already_started(uploaded, monkeypatch) -> None:
    monkeypatch.setattr(bootscript, "USER_DATA_LIMIT", 2000)  # force several launch requests
    keys = many_datasets(uploaded, 40)
    calls = {"n": 0}
    real_run = AWSClient.run_instances

    def second_call_fails(self, request):
        calls["n"] += 1
        if calls["n"] >= 2:  # no capacity for the second batch in any Availability Zone
            raise AWSClient_failure("InsufficientInstanceCapacity")
        return real_run(self, request)

    from chalicelib.awsclient import _failure

    def AWSClient_failure(code):  # noqa: N802 - reads like the exception it builds
        return _failure("starting instances", error(code))

    monkeypatch.setattr(AWSClient, "run_instances", second_call_fails)

    result = uploaded.submit(submit_doc(*keys))

    assert result.outcome is Outcome.FAILED
    assert len(result.plan.batches) > 2
    subnets = uploaded.aws.default_subnets()
    assert len(subnets) > 1 and calls["n"] == 2 + len(subnets)  # the first try, then each default subnet
    assert uploaded.instances() == []
    stopped = uploaded.instances(("shutting-down", "terminated"))
    assert len(stopped) == result.plan.batches[0].count
    certificate = uploaded.certificate(JOB)
    assert "STEP 4/4 (Initialize Processing): AWS ERROR." in certificate
    assert "no capacity" in certificate and "already started were stopped" in certificate
    assert "Traceback" not in certificate
    record = uploaded.record(JOB)
    assert record["state"] == "FAILED" and "no capacity" in record["reason"]
    assert sorted(record["instance_ids"]) == sorted(i["InstanceId"] for i in stopped)


def test_an_s3_error_after_launch_stops_the_instances_and_fails_the_job(uploaded, monkeypatch) -> None:
    real_put = AWSClient.put

    def launch_record_fails(self, bucket, key, body, *args, **kwargs):
        if key.startswith("logs/open/") and b'"instance_ids":[]' not in body:
            from chalicelib.awsclient import _failure
            raise _failure(f"writing s3://{bucket}/{key}", error("InternalError", "PutObject"))
        return real_put(self, bucket, key, body, *args, **kwargs)

    monkeypatch.setattr(AWSClient, "put", launch_record_fails)

    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))

    assert result.outcome is Outcome.FAILED
    assert uploaded.instances() == []
    assert uploaded.record(JOB)["state"] == "FAILED"
    assert "AWS ERROR. AWS refused writing" in uploaded.certificate(JOB)


def test_an_unexpected_defect_is_reported_without_a_traceback(uploaded, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("chalicelib.jobmanager.plan_job", broken)

    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"))

    assert result.outcome is Outcome.REFUSED
    certificate = uploaded.certificate(JOB)
    assert "INTERNAL ERROR. The job manager failed unexpectedly. Nothing was started." in certificate
    assert "ZeroDivisionError" not in certificate and "Traceback" not in certificate
    assert uploaded.instances() == []


def test_throttling_is_retried_by_botocore_and_the_job_still_starts(uploaded) -> None:
    attempts = {"n": 0}

    def throttle_twice(request, **kwargs):
        attempts["n"] += 1
        if attempts["n"] <= 2:
            body = (b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>slow down"
                    b"</Message></Error></Errors><RequestID>x</RequestID></Response>")
            return AWSResponse(request.url, 503, {}, _Raw(body))
        return None

    import boto3

    from chalicelib.awsclient import RETRIES
    ec2 = boto3.client("ec2", region_name="us-east-1", config=RETRIES)
    ec2.meta.events.register_first("before-send.ec2.RunInstances", throttle_twice)
    uploaded.aws.ec2 = ec2

    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"))

    assert result.outcome is Outcome.STARTED
    assert attempts["n"] == 3
    # moto also runs the request behind an injected response, so count the job's own record.
    assert len(uploaded.record(JOB)["instance_ids"]) == 1


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs):
        yield self.body

    def read(self, *args):
        body, self.body = self.body, b""
        return body


def test_client_tokens_are_stable_per_submission_and_batch(uploaded) -> None:
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"))
    submission = result.plan.submission
    token = planner.client_token(submission, result.plan.submit_etag, 0)
    assert token == result.plan.batches[0].client_token
    assert planner.client_token(submission, result.plan.submit_etag, 1) != token
    assert planner.client_token(submission, '"other-etag"', 0) != token
    assert len(token) <= 64


@pytest.mark.parametrize("code,advice", [
    ("VcpuLimitExceeded", "vCPU quota"),
    ("RequestLimitExceeded", "throttling"),
    ("UnauthorizedOperation", "not permitted"),
])
def test_launch_errors_carry_advice(uploaded, monkeypatch, code: str, advice: str) -> None:
    from chalicelib.awsclient import _failure

    def refuse(self, request):
        raise _failure("starting instances", error(code))

    monkeypatch.setattr(AWSClient, "run_instances", refuse)
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"))
    assert result.outcome is Outcome.FAILED
    assert advice in uploaded.certificate(JOB)
    assert uploaded.record(JOB)["refused"] is True


def test_no_capacity_falls_back_to_the_blueprints_next_type(uploaded, monkeypatch) -> None:
    from chalicelib.awsclient import _failure
    real_run = AWSClient.run_instances
    tried = []

    def no_t2(self, request):
        tried.append(request["InstanceType"])
        if request["InstanceType"] == "t2.micro":
            raise _failure("starting instances", error("InsufficientInstanceCapacity"))
        return real_run(self, request)

    monkeypatch.setattr(AWSClient, "run_instances", no_t2)
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"), fallback_instance_types=("t3.micro", "m5.large"))

    assert result.outcome is Outcome.STARTED
    assert tried == ["t2.micro"] * (1 + len(uploaded.aws.default_subnets())) + ["t3.micro"]
    [instance] = uploaded.instances()
    assert instance["InstanceType"] == "t3.micro"
    assert "started on t3.micro instead of t2.micro" in uploaded.certificate(JOB)
    assert uploaded.record(JOB)["instance_type"] == "t3.micro"


def test_no_capacity_tries_the_same_type_in_the_other_availability_zones_first(uploaded, monkeypatch) -> None:
    from chalicelib.awsclient import _failure
    real_run = AWSClient.run_instances
    subnets = uploaded.aws.default_subnets()
    tried = []

    def only_in_the_last_zone(self, request):
        tried.append((request["InstanceType"], request.get("SubnetId", "")))
        if request.get("SubnetId") != subnets[-1]:
            raise _failure("starting instances", error("InsufficientInstanceCapacity"))
        return real_run(self, request)

    monkeypatch.setattr(AWSClient, "run_instances", only_in_the_last_zone)
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"), fallback_instance_types=("t3.micro",))

    assert result.outcome is Outcome.STARTED
    assert tried == [("t2.micro", ""), *(("t2.micro", s) for s in subnets)]
    [instance] = uploaded.instances()
    assert instance["InstanceType"] == "t2.micro" and instance["SubnetId"] == subnets[-1]
    assert f"trying t2.micro in {subnets[1]}" in uploaded.certificate(JOB)


def test_no_capacity_anywhere_is_refused_cleanly(uploaded, monkeypatch) -> None:
    from chalicelib.awsclient import _failure

    def none_at_all(self, request):
        raise _failure("starting instances", error("InsufficientInstanceCapacity"))

    monkeypatch.setattr(AWSClient, "run_instances", none_at_all)
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"), fallback_instance_types=("t3.micro",))

    assert result.outcome is Outcome.FAILED
    assert uploaded.instances() == []
    certificate = uploaded.certificate(JOB)
    assert "No capacity for t2.micro" in certificate and "AWS ERROR." in certificate


def test_the_vcpu_quota_is_checked_when_it_can_be_read(uploaded, monkeypatch) -> None:
    monkeypatch.setattr(AWSClient, "vcpu_quota", lambda self, code: 2.0 if code == "L-1216C47A" else None)

    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif", instance_type="m5.xlarge"))

    assert result.outcome is Outcome.REFUSED
    assert "vCPU quota for m5.xlarge (2 vCPUs, 0 in use) leaves room for 0 more" in result.message
    assert uploaded.instances() == []


def test_instance_families_map_to_their_quotas() -> None:
    from chalicelib.facts import quota_class
    assert [quota_class(t) for t in ("m5.xlarge", "t2.micro", "p3.2xlarge", "g4dn.xlarge", "inf1.xlarge",
                                     "x1e.xlarge", "c5n.large")] == \
        ["standard", "standard", "p", "g", "inf", "x", "standard"]
