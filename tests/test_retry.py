"""Retrying datasets of an ended job: retry.json and its refusals, against moto."""

from __future__ import annotations

import json
from datetime import timedelta
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib import handlers
from chalicelib.monitor.costs import ledger_key
from chalicelib.recovery.retry import CannotRetry, retry_from_s3
from tests.conftest import GROUP, Analysis
from tests.test_spot import JOB, Cloud

RETRY_KEY = f"{GROUP}/submissions/again_retry.json"


@pytest.fixture
def ended(uploaded: Analysis) -> Cloud:
    """A job of two datasets that ended FAILED: a.tif succeeded, b.tif failed."""
    cloud = Cloud(uploaded, spot="never")
    start = cloud.submit("a.tif", "b.tif").record.started
    a, b = cloud.current("a.tif"), cloud.current("b.tif")
    cloud.report("a.tif", a)
    cloud.report("b.tif", b, "FAILED")
    cloud.ended(a, start + timedelta(minutes=30))
    cloud.ended(b, start + timedelta(minutes=30))
    assert cloud.record()["state"] == "FAILED"
    return cloud


def retry(cloud: Cloud, body: Any, key: str = RETRY_KEY) -> list[str]:
    cloud.analysis.put(key, body if isinstance(body, (bytes, str)) else json.dumps(body))
    return retry_from_s3(cloud.analysis.aws, cloud.settings, cloud.settings.bucket_name, key, cloud.analysis.clock)


def ledger(cloud: Cloud) -> dict[str, Any]:
    return json.loads(cloud.analysis.get(ledger_key(GROUP)))


def test_retrying_the_failed_datasets_reruns_them_in_the_same_folder_and_ends_once_more(ended: Cloud) -> None:
    before = ended.record()
    first_b = before["datasets"]["b.tif"]["instance_id"]

    assert retry(ended, {"timestamp": JOB, "failed": True}) == ["b.tif"]

    record = ended.record()
    assert record["state"] == "RUNNING" and record["retries"] == 1 and record["billed_cost"] == before["actual_cost"]
    second_b = record["datasets"]["b.tif"]["instance_id"]
    assert second_b != first_b and record["datasets"]["a.tif"]["instance_id"] == before["datasets"]["a.tif"]["instance_id"]
    assert "retry after retry 1 requested by the retry file" in record["datasets"]["b.tif"]["attempts"][1]["why"]
    assert ended.analysis.keys(f"{ended.folder}/process_results/end.txt") == []
    assert ended.analysis.keys(f"{ended.folder}/logs/ends/") == [f"{ended.folder}/logs/ends/{name}"
                                                                for name in ("end-1.txt", "ending-1.json")]
    certificate = ended.analysis.certificate(JOB)
    assert "RETRY 1 (" in certificate and "1 dataset(s) started again: b.tif." in certificate
    assert "ACTUAL COST" not in certificate

    ended.report("b.tif", second_b)
    ended.ended(second_b, ended.analysis.clock.now + timedelta(hours=1))

    final = ended.record()
    assert final["state"] == "SUCCEEDED" and final["actual_cost"] > before["actual_cost"]
    assert ledger(ended)["records"] == 2
    assert ledger(ended)["spent"] == pytest.approx(final["actual_cost"], abs=1e-4)  # each hour billed once
    assert ended.analysis.certificate(JOB).count("ACTUAL COST") == 1


def test_a_named_dataset_that_succeeded_can_be_run_again(ended: Cloud) -> None:
    assert retry(ended, {"timestamp": JOB, "dataset": "a.tif"}) == ["a.tif"]


@pytest.mark.parametrize(("body", "message", "in_job"), [
    (b"{not json", "is not JSON", False),
    ({"job": JOB}, "does not name a job", False),
    ({"timestamp": JOB, "datasets": "c.tif"}, "has no dataset 'c.tif'", True),
    ({"timestamp": JOB, "datasets": [3]}, "must be a list of dataset names", True),
    ({"timestamp": JOB, "failed": "yes"}, "\"failed\" must be true or false", True),
    ({"timestamp": JOB, "datasets": ["a.tif"], "failed": True}, "Every chosen dataset", True),
])
def test_bad_retry_files_are_refused_with_a_certificate_line(ended: Cloud, body: Any, message: str,
                                                               in_job: bool) -> None:
    with pytest.raises(CannotRetry) as refused:
        retry(ended, body)

    assert message in refused.value.message
    refusals = [k for k in ended.analysis.keys(f"{GROUP}/results/") if "_refused-again_retry" in k]
    certificate = ended.analysis.certificate(JOB) if in_job else ended.analysis.get(refusals[0])
    assert len(refusals) == (0 if in_job else 1)
    line = next(x for x in certificate.splitlines() if x.startswith("RETRY REFUSED"))
    assert RETRY_KEY in line and message in line
    assert ended.record()["state"] == "FAILED" and ended.record()["retries"] == 0


def test_a_retry_of_a_job_that_does_not_exist_is_refused_in_a_refusal_folder(ended: Cloud) -> None:
    with pytest.raises(CannotRetry, match="There is no job 2020-01-01"):
        retry(ended, {"timestamp": "2020-01-01"})
    refusals = [k for k in ended.analysis.keys(f"{GROUP}/results/") if "_refused-again_retry" in k]
    assert len(refusals) == 1 and "RETRY REFUSED" in ended.analysis.get(refusals[0])


def test_a_running_job_is_not_retried(uploaded: Analysis) -> None:
    cloud = Cloud(uploaded)
    cloud.submit("a.tif")

    with pytest.raises(CannotRetry, match="is RUNNING: retry it once it has ended"):
        retry(cloud, {"timestamp": JOB})


def test_a_retry_over_budget_or_concurrency_is_refused(ended: Cloud) -> None:
    ended.settings = ended.settings.model_copy(update={"maxcost": 0.001})
    with pytest.raises(CannotRetry, match="has a budget of"):
        retry(ended, {"timestamp": JOB})

    ended.settings = ended.settings.model_copy(update={"maxcost": None, "deploy_limit": 1})
    ended.analysis.ec2.run_instances(ImageId=ended.settings.ami, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "analysis", "Value": ended.settings.bucket_name}]}])
    with pytest.raises(CannotRetry, match="may run 1 instance"):
        retry(ended, {"timestamp": JOB})
    assert ended.record()["retries"] == 0


def test_the_retry_handler_takes_retry_files(ended: Cloud) -> None:
    ended.analysis.put(RETRY_KEY, json.dumps({"timestamp": JOB}))
    token = handlers.configure(lambda bucket: ended.settings, lambda region: ended.analysis.aws,
                               lambda: [ended.settings.bucket_name])
    try:
        assert handlers.handle_retry_event(ended.settings.bucket_name, RETRY_KEY) == ["b.tif"]
        assert handlers.handle_retry_event(ended.settings.bucket_name, RETRY_KEY) is None  # running now
    finally:
        handlers.release(token)


def test_the_cli_writes_a_retry_file_and_reports_the_answer(ended: Cloud) -> None:
    from service.cli_retry import await_answer, request_retry
    from service.client import NeuroCAASClient, UserError
    from service.connection import Connection

    client = NeuroCAASClient(Connection(None, {}, "us-east-1", (ended.settings.bucket_name,)))
    ref = client.find(JOB)
    bucket = ended.settings.bucket_name

    def job_manager(key: str) -> Callable[[float], None]:
        return lambda _: handlers_retry(ended, bucket, key)

    refused = request_retry(client, ref, ["c.tif"], failed=False)
    with pytest.raises(UserError, match="has no dataset 'c.tif'"):
        await_answer(client, ref, refused, 0, timeout=5, sleep=job_manager(refused))

    key = request_retry(client, ref, [], failed=True)
    assert json.loads(ended.analysis.get(key)) == {"timestamp": JOB, "failed": True}
    assert await_answer(client, ref, key, 0, timeout=5, sleep=job_manager(key)) == \
        "1 dataset(s) started again: b.tif."


def handlers_retry(cloud: Cloud, bucket: str, key: str) -> None:
    try:
        retry_from_s3(cloud.analysis.aws, cloud.settings, bucket, key, cloud.analysis.clock)
    except CannotRetry:
        pass
