"""At-least-once delivery: duplicates, concurrent duplicates and a handler killed part way."""

from __future__ import annotations

import threading

import pytest

from chalicelib.awsclient import AWSClient
from chalicelib.jobmanager import Outcome
from tests.conftest import GROUP, submit_doc

JOB = "2026-11-25T10-00-00"
KEY = f"{GROUP}/submissions/submit.json"


def test_the_same_event_twice_starts_one_job(uploaded) -> None:
    first = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))
    second = uploaded.manager().handle_submit(uploaded.settings.bucket_name, KEY)

    assert (first.outcome, second.outcome) == (Outcome.STARTED, Outcome.DUPLICATE)
    assert len(uploaded.instances()) == 2
    assert uploaded.record(JOB)["state"] == "RUNNING"


def test_the_same_event_three_times_at_once_starts_one_job(uploaded) -> None:
    uploaded.put(KEY, submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))
    barrier = threading.Barrier(3)
    outcomes: list[Outcome] = []

    def deliver() -> None:
        manager = uploaded.manager()
        barrier.wait()
        outcomes.append(manager.handle_submit(uploaded.settings.bucket_name, KEY).outcome)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == sorted([Outcome.STARTED, Outcome.DUPLICATE, Outcome.DUPLICATE])
    assert len(uploaded.instances()) == 2


class Killed(BaseException):
    """Stands for the Lambda runtime ending the handler (a timeout): no clean-up code runs."""


@pytest.mark.parametrize("killed_after_launch", [True, False])
def test_a_killed_handler_is_resumed_by_a_later_delivery_without_launching_twice(
        uploaded, monkeypatch, killed_after_launch: bool) -> None:
    real_run = AWSClient.run_instances

    def run_then_die(self, request):
        if killed_after_launch:
            real_run(self, request)
        raise Killed()

    monkeypatch.setattr(AWSClient, "run_instances", run_then_die)
    with pytest.raises(Killed):
        uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))
    monkeypatch.setattr(AWSClient, "run_instances", real_run)
    assert uploaded.record(JOB)["state"] == "QUEUED"

    early = uploaded.manager().handle_submit(uploaded.settings.bucket_name, KEY)
    assert early.outcome is Outcome.DUPLICATE, "the first attempt's lease has not run out yet"

    uploaded.clock.advance(400)
    resumed = uploaded.manager().handle_submit(uploaded.settings.bucket_name, KEY)

    assert resumed.outcome is Outcome.STARTED
    assert len(uploaded.instances()) == 2
    record = uploaded.record(JOB)
    assert record["state"] == "RUNNING"
    assert sorted(record["instance_ids"]) == sorted(i["InstanceId"] for i in uploaded.instances())


def test_an_s3_error_then_redelivery_never_starts_twice(uploaded, monkeypatch) -> None:
    from botocore.exceptions import ClientError

    from chalicelib.awsclient import _failure
    real_put = AWSClient.put

    def status_write_fails(self, bucket, key, body, *args, **kwargs):
        if key.startswith("logs/open/") and b'"instance_ids":[]' not in body:  # the launch record
            raise _failure("writing", ClientError({"Error": {"Code": "InternalError", "Message": "x"}}, "PutObject"))
        return real_put(self, bucket, key, body, *args, **kwargs)

    monkeypatch.setattr(AWSClient, "put", status_write_fails)
    failed = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"))
    monkeypatch.setattr(AWSClient, "put", real_put)
    uploaded.clock.advance(400)
    again = uploaded.manager().handle_submit(uploaded.settings.bucket_name, KEY)

    assert (failed.outcome, again.outcome) == (Outcome.FAILED, Outcome.DUPLICATE)
    assert uploaded.instances() == []
    assert uploaded.record(JOB)["state"] == "FAILED"


def test_a_different_submission_for_a_running_job_id_is_refused(uploaded) -> None:
    uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif"))
    before = uploaded.certificate(JOB)

    other = uploaded.submit(submit_doc(f"{GROUP}/inputs/b.tif"), key=f"{GROUP}/submissions/again_submit.json")

    assert other.outcome is Outcome.REFUSED
    assert "already exists" in other.message
    assert uploaded.certificate(JOB) == before
    assert len(uploaded.instances()) == 1
    assert "already exists" in uploaded.get(f"{other.location.prefix}/logs/certificate.txt")
