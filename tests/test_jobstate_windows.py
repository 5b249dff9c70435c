"""The narrow windows of docs/JOBSTATE.md, each closed: a Lambda that dies part way (between the
claim and the open marker, after end.txt), and a cancel that reaches a job before its launch."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from chalicelib.jobmanager import JobManager
from chalicelib.jobstate.markers import OpenJobs
from chalicelib.jobstate.reconcile import Reconciler
from chalicelib.jobstore import JobStore
from chalicelib.monitor.control import reap
from chalicelib.monitor.costs import add_to_ledger, end_id, ledger_key
from chalicelib.monitor.statechange import InstanceMonitor
from chalicelib.records import JobRecord
from tests.conftest import GROUP, submit_doc
from tests.test_jobstate import ENDINGS, JOB, KEY, start, status_key
from tests.weakaws import AsyncInvoker, Crash, FakeClock, s3_event


def past_any_lambda(clock: FakeClock) -> None:
    """Move the clock beyond the longest Lambda run after now (end.txt's time is the real one)."""
    clock.now = datetime.now(timezone.utc) + timedelta(minutes=16)


def crashing_once(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, except that its first call dies as a Lambda that ran out of time."""
    left = {"crashes": 1}

    def call(*args: Any, **kwargs: Any) -> Any:
        if left["crashes"]:
            left["crashes"] -= 1
            raise Crash("the Lambda timed out")
        return real(*args, **kwargs)

    return call


def always_crashing(*args: Any, **kwargs: Any) -> Any:
    raise Crash("the Lambda timed out")


def end_with_a_dead_writer(uploaded, clock: FakeClock, record: Any, postprocess: str = "") -> None:  # type: ignore[no-untyped-def]
    """The job's last instance ends; the Lambda that ends the job dies where the test made it."""
    monitor = InstanceMonitor(uploaded.aws, uploaded.settings.bucket_name, clock, Logger(service="test"),
                              postprocess=postprocess, open_jobs=OpenJobs())
    with pytest.raises(Crash):
        monitor.handle(record.instance_ids[0], "terminated", clock() + timedelta(hours=1))


def test_a_handler_that_dies_between_the_claim_and_the_open_marker_is_resumed_too(uploaded, monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(JobStore, "save_open_marker", crashing_once(JobStore.save_open_marker))
    manager = JobManager(uploaded.settings, uploaded.aws, clock=clock)
    invoker = AsyncInvoker(clock, lambda e: manager.handle_submit(uploaded.settings.bucket_name, KEY), lambda e: None)
    uploaded.put(KEY, submit_doc(f"{GROUP}/inputs/a.tif"))

    invoker.invoke(s3_event(uploaded.settings.bucket_name, KEY))
    clock.advance(60)
    invoker.run_due()  # the retry finds the claim held: a duplicate, but it leaves the job its marker
    assert invoker.outcomes == ["Crash", "ok"] and uploaded.instances() == []
    assert [k.rsplit("/", 1)[-1] for k in uploaded.keys("logs/open/")] == [f"job__{uploaded.settings.bucket_name}_{JOB}.json"]

    clock.advance(400)  # past the lease
    resume = lambda key: manager.handle_submit(uploaded.settings.bucket_name, key)  # noqa: E731
    report = reap(uploaded.aws, uploaded.settings.bucket_name, clock(), resume=resume)

    assert report.resumed == [f"job__{uploaded.settings.bucket_name}_{JOB}"]
    assert uploaded.record(JOB)["state"] == "RUNNING" and len(uploaded.instances()) == 1


def test_a_job_cancelled_while_queued_never_launches(uploaded) -> None:
    clock = FakeClock()
    folder = uploaded.job_folder(JOB)
    # The cancel reaches a QUEUED job (no instance yet): it can only leave cancel.json.
    uploaded.put(f"{folder}/logs/cancel.json", {"by": "alice", "at": clock().isoformat()})
    uploaded.put(KEY, submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))

    JobManager(uploaded.settings, uploaded.aws, clock=clock).handle_submit(uploaded.settings.bucket_name, KEY)

    assert uploaded.instances(("pending", "running", "shutting-down", "terminated")) == []
    record = uploaded.record(JOB)
    assert record["state"] == "CANCELLED" and record["reason"] == "Cancelled by alice." and record["actual_cost"] == 0
    assert "Cancelled by alice. No instance was launched" in uploaded.certificate(JOB)
    assert uploaded.keys("logs/open/") == []


def test_a_cancel_that_raced_the_launch_is_carried_out_by_the_reaper(uploaded) -> None:
    clock = FakeClock()
    uploaded.put(KEY, submit_doc(f"{GROUP}/inputs/a.tif"))
    JobManager(uploaded.settings, uploaded.aws, clock=clock).handle_submit(uploaded.settings.bucket_name, KEY)
    assert uploaded.record(JOB)["state"] == "RUNNING" and len(uploaded.instances()) == 1
    # cancel.json written after the handler's look, by a cancel that had read the job as QUEUED
    uploaded.put(f"{uploaded.job_folder(JOB)}/logs/cancel.json", {"by": "bob"})

    report = reap(uploaded.aws, uploaded.settings.bucket_name, clock())

    assert "cancelled by bob" in next(iter(report.jobs.values()))
    assert uploaded.instances() == []
    assert uploaded.record(JOB)["state"] == "CANCELLED"


def test_the_reaper_adds_the_cost_the_end_writer_died_before_adding_and_only_once(uploaded, monkeypatch) -> None:
    clock = FakeClock()
    record = start(uploaded, clock, "a.tif")
    uploaded.put(status_key(uploaded, "a.tif"), {"status": "SUCCESS"})
    monkeypatch.setattr("chalicelib.monitor.statechange.add_to_ledger", always_crashing)
    end_with_a_dead_writer(uploaded, clock, record)
    assert uploaded.record(JOB)["state"] == "SUCCEEDED" and len(uploaded.keys("logs/open/")) == 1
    monkeypatch.undo()

    reap(uploaded.aws, uploaded.settings.bucket_name, clock())  # the writer may still be at work: left alone
    assert len(uploaded.keys("logs/open/")) == 1
    assert not uploaded.keys(ledger_key(GROUP))
    past_any_lambda(clock)
    reap(uploaded.aws, uploaded.settings.bucket_name, clock())
    reap(uploaded.aws, uploaded.settings.bucket_name, clock())  # nothing left to settle

    ledger = json.loads(uploaded.get(ledger_key(GROUP)))
    assert ledger["records"] == 1 and ledger["spent"] == pytest.approx(uploaded.record(JOB)["actual_cost"], abs=1e-6)
    assert uploaded.keys("logs/open/") == []
    # the end writer adding after all (a slow one, not a dead one) is noticed too
    ended = JobRecord.model_validate(uploaded.record(JOB))
    assert add_to_ledger(uploaded.aws, uploaded.settings.bucket_name, GROUP, 1.0,
                         end_id(ended, uploaded.job_folder(JOB))) is False
    assert json.loads(uploaded.get(ledger_key(GROUP)))["records"] == 1


def test_post_processing_cut_short_by_a_dead_end_writer_is_run_by_the_reaper_once(uploaded, monkeypatch) -> None:
    clock = FakeClock()
    record = start(uploaded, clock, "a.tif")
    uploaded.put(status_key(uploaded, "a.tif"), {"status": "SUCCESS"})
    spec = "tests.test_jobstate:count_ending"
    ENDINGS.clear()
    monkeypatch.setattr("chalicelib.monitor.statechange.run_postprocess", always_crashing)
    end_with_a_dead_writer(uploaded, clock, record, postprocess=spec)
    monkeypatch.undo()

    reap(uploaded.aws, uploaded.settings.bucket_name, clock(), postprocess=spec)
    assert ENDINGS == []  # not while the writer may still be running it
    past_any_lambda(clock)
    for _ in range(2):
        reap(uploaded.aws, uploaded.settings.bucket_name, clock(), postprocess=spec)

    assert len(ENDINGS) == 1 and uploaded.certificate(JOB).count(f"POSTPROCESSING ({spec}): DONE") == 1
    assert json.loads(uploaded.get(ledger_key(GROUP)))["records"] == 1


def test_an_end_writer_dead_right_after_end_txt_is_settled_by_the_reaper(uploaded, monkeypatch) -> None:
    clock = FakeClock()
    record = start(uploaded, clock, "a.tif")
    uploaded.put(status_key(uploaded, "a.tif"), {"status": "SUCCESS"})
    # dies right after creating end.txt, before job.json says the job ended
    monkeypatch.setattr(Reconciler, "_write_certificate", crashing_once(Reconciler._write_certificate))
    end_with_a_dead_writer(uploaded, clock, record)

    reap(uploaded.aws, uploaded.settings.bucket_name, clock())  # ends the record, but the end is not its own
    assert uploaded.record(JOB)["state"] == "SUCCEEDED" and len(uploaded.keys("logs/open/")) == 1
    past_any_lambda(clock)
    reap(uploaded.aws, uploaded.settings.bucket_name, clock())

    ledger = json.loads(uploaded.get(ledger_key(GROUP)))
    assert ledger["records"] == 1 and ledger["spent"] == pytest.approx(uploaded.record(JOB)["actual_cost"], abs=1e-6)
    assert uploaded.keys("logs/open/") == []


def test_a_retry_before_the_reaper_settled_still_bills_the_first_end(uploaded, monkeypatch) -> None:
    from chalicelib.recovery.retry import retry_job

    clock = FakeClock()
    record = start(uploaded, clock, "a.tif")
    uploaded.put(status_key(uploaded, "a.tif"), {"status": "FAILED", "reason": "bad luck"})
    monkeypatch.setattr("chalicelib.monitor.statechange.add_to_ledger", always_crashing)
    end_with_a_dead_writer(uploaded, clock, record)
    monkeypatch.undo()
    first_cost = uploaded.record(JOB)["actual_cost"]

    retry_job(uploaded.aws, uploaded.settings, uploaded.settings.bucket_name, uploaded.job_folder(JOB),
              names=[], failed_only=True, by="alice", clock=clock)

    ledger = json.loads(uploaded.get(ledger_key(GROUP)))
    assert ledger["records"] == 1 and ledger["spent"] == pytest.approx(first_cost, abs=1e-6)
    assert uploaded.record(JOB)["billed_cost"] == pytest.approx(first_cost)
