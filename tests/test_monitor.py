"""Monitoring and control against moto: state changes, cost records, end.txt, reaper, cancel."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from aws_lambda_powertools import Logger

from chalicelib.jobstate.markers import OpenJobs
from chalicelib.monitor.control import CannotCancel, cancel_from_s3, cancel_job, reap
from chalicelib.monitor.costs import active_key, history_key
from chalicelib.monitor.statechange import InstanceMonitor
from chalicelib.pricing import PUBLIC_IPV4_HOURLY
from tests.conftest import GROUP, submit_doc

T2_MICRO_HOURLY = 0.0116 + PUBLIC_IPV4_HOURLY  # the price table's t2.micro and its public IPv4 address

JOB = "2026-11-25T10-00-00"


@pytest.fixture
def job(uploaded):  # type: ignore[no-untyped-def]
    result = uploaded.submit(submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))
    uploaded.launch = result.record.started  # the launch as the job records it (the test's clock)
    uploaded.ec2_launch = uploaded.instances()[0]["LaunchTime"]
    uploaded.ids = sorted(result.record.instance_ids)
    return uploaded


class Events:
    """Delivers state-change events at a given time, as EventBridge would (time from the event)."""

    def __init__(self, analysis, at: datetime, postprocess: str = "") -> None:  # type: ignore[no-untyped-def]
        self.at = at
        self.monitor = InstanceMonitor(analysis.aws, analysis.settings.bucket_name, lambda: at + timedelta(hours=9),
                                       Logger(service="test"), postprocess, open_jobs=OpenJobs())

    def handle(self, instance_id: str, state: str = "terminated") -> str:
        return self.monitor.handle(instance_id, state, self.at)


def monitor(analysis, at: datetime) -> Events:  # type: ignore[no-untyped-def]
    return Events(analysis, at)


def history(analysis, instance_id: str) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(analysis.get(history_key(GROUP, instance_id)))


def test_running_then_stopped_keeps_one_record_with_its_whole_duration(job) -> None:
    first = job.ids[0]
    at = job.launch + timedelta(days=2, hours=3)
    assert monitor(job, job.launch).handle(first, "running") == "recorded as running"
    assert monitor(job, job.launch).handle(first, "running") == "already recorded as running"
    assert json.loads(job.get(active_key(first)))["group"] == GROUP

    monitor(job, at).handle(first, "stopped")

    record = history(job, first)
    assert record["cost"] == pytest.approx(51 * T2_MICRO_HOURLY, rel=1e-3)  # two days and three hours, counted whole, with the public IPv4 address
    assert active_key(first) not in job.keys("logs/active/")
    assert monitor(job, at + timedelta(minutes=1)).handle(first).startswith("already recorded as stopped")
    assert history(job, first) == record


def test_out_of_order_and_duplicated_events_converge(job) -> None:
    first = job.ids[0]
    at = job.launch + timedelta(hours=1)
    monitor(job, at).handle(first)  # the terminated event arrives before the running one
    late_running = monitor(job, job.launch).handle(first, "running")

    assert late_running.startswith("already recorded as stopped")
    assert history(job, first)["cost"] == pytest.approx(T2_MICRO_HOURLY, rel=1e-3)
    assert job.keys("logs/active/") == []


def test_end_txt_appears_once_when_every_instance_has_stopped(job) -> None:
    at = job.launch + timedelta(minutes=30)
    end = f"{job.job_folder(JOB)}/process_results/end.txt"
    for instance_id, label in zip(job.ids, ("a.tif", "b.tif")):
        job.put(f"{job.job_folder(JOB)}/logs/DATASET_NAME:{label}_STATUS.txt", {"status": "SUCCESS"})
    assert "still running" in monitor(job, at).handle(job.ids[0])
    assert end not in job.keys()

    outcomes = [monitor(job, at).handle(job.ids[1]), monitor(job, at).handle(job.ids[0])]

    assert "end.txt written" in outcomes[0] and outcomes[1].startswith("ignored")  # the job has closed
    assert f"actual cost ${T2_MICRO_HOURLY:.4f}" in job.get(end)  # two half hours, each counted as such
    record = job.record(JOB)
    assert record["state"] == "SUCCEEDED" and record["actual_cost"] == pytest.approx(T2_MICRO_HOURLY, abs=1e-4)
    assert sum(history(job, i)["cost"] for i in job.ids) == pytest.approx(T2_MICRO_HOURLY, abs=1e-4)
    certificate = job.certificate(JOB)
    assert certificate.count(f"ACTUAL COST: ${T2_MICRO_HOURLY:.4f}") == 1 and certificate.count("STATUS: SUCCESS") == 2
    assert job.keys("logs/open/") == []


def test_an_instance_lost_before_reporting_fails_its_dataset(job) -> None:
    for instance_id in job.ids:
        monitor(job, job.launch + timedelta(minutes=5)).handle(instance_id)

    status = json.loads(job.get(f"{job.job_folder(JOB)}/logs/DATASET_NAME:a.tif_STATUS.txt"))
    assert status["status"] == "FAILED" and "stopped before its dataset reported" in status["reason"]
    assert job.record(JOB)["state"] == "FAILED"
    assert "STATUS: FAILED" in job.certificate(JOB)


def test_other_analyses_instances_are_ignored_without_an_ec2_call(job) -> None:
    other = job.ec2.run_instances(ImageId=job.settings.ami, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "analysis", "Value": "someone-else"}]}])
    instance_id = other["Instances"][0]["InstanceId"]
    calls: list[str] = []
    job.ec2.meta.events.register("before-call.ec2.*", lambda model, **_: calls.append(model.name))
    watcher = monitor(job, job.launch)

    assert watcher.handle(instance_id).startswith("ignored")
    assert watcher.handle(job.ids[0], "running") == "recorded as running"
    assert calls == []


def test_the_reaper_ends_overdue_instances_after_the_grace_period(job) -> None:
    assert reap(job.aws, job.settings.bucket_name, job.ec2_launch + timedelta(minutes=65)).overdue == []

    reaped = reap(job.aws, job.settings.bucket_name, job.ec2_launch + timedelta(minutes=71)).overdue

    assert sorted(reaped) == job.ids
    assert job.instances() == []
    status = json.loads(job.get(f"{job.job_folder(JOB)}/logs/DATASET_NAME:b.tif_STATUS.txt"))
    assert status["status"] == "TIMED OUT" and "lifetime of 60 minutes" in status["reason"]


def test_cancel_from_a_cancel_file(job) -> None:
    key = f"{GROUP}/submissions/stop_cancel.json"
    job.put(key, {"timestamp": JOB})

    stopped = cancel_from_s3(job.aws, job.settings.bucket_name, key, job.launch)

    assert stopped == 2 and job.instances() == []
    record = job.record(JOB)
    assert record["state"] == "CANCELLED" and "cancel file" in record["reason"]
    assert {d["state"] for d in record["datasets"].values()} == {"CANCELLED"}
    assert job.keys(f"{job.job_folder(JOB)}/process_results/") == [f"{job.job_folder(JOB)}/process_results/end.txt"]
    for instance_id in job.ids:  # the terminated events that follow change nothing
        assert monitor(job, job.launch).handle(instance_id).startswith("ignored")
    assert job.record(JOB) == record
    with pytest.raises(CannotCancel, match="already ended"):
        cancel_job(job.aws, job.settings.bucket_name, job.job_folder(JOB), job.launch)


@pytest.mark.parametrize("body,message", [
    ("not json", "must be JSON"),
    ({"timestamp": "../../x"}, "does not name a job"),
    ({"timestamp": "no-such-job"}, "There is no job"),
])
def test_bad_cancel_files_are_refused(job, body, message: str) -> None:
    key = f"{GROUP}/submissions/bad_cancel.json"
    job.put(key, body)
    with pytest.raises(CannotCancel, match=message):
        cancel_from_s3(job.aws, job.settings.bucket_name, key, job.launch)
    assert len(job.instances()) == 2


def test_costs_per_group_and_job(job) -> None:
    from service.costs import spend_by_group

    at = job.launch + timedelta(hours=2)
    monitor(job, job.launch).handle(job.ids[0], "running")
    monitor(job, at).handle(job.ids[1])  # stopped after two hours

    spend = spend_by_group(job.s3, job.settings.bucket_name, now=at)

    mine = spend[GROUP]
    assert mine.spent == pytest.approx(2 * T2_MICRO_HOURLY, rel=1e-2)
    assert mine.running == pytest.approx(2 * T2_MICRO_HOURLY, rel=1e-2)
    assert mine.instances == 2
    assert list(mine.jobs) == [JOB]  # the job id, not its folder name
    assert mine.jobs[JOB].spent + mine.jobs[JOB].running == pytest.approx(4 * T2_MICRO_HOURLY, rel=1e-2)
    assert mine.jobs[JOB].instances == 2


def test_the_groups_spend_is_counted_once_and_read_by_the_budget_check(job) -> None:
    from chalicelib.monitor.costs import ledger_key

    at = job.launch + timedelta(hours=10)
    for instance_id in job.ids * 2:  # every event delivered twice
        monitor(job, at).handle(instance_id)

    ledger = json.loads(job.get(ledger_key(GROUP)))  # one addition: the job's actual cost, when it ended
    assert ledger["spent"] == pytest.approx(20 * T2_MICRO_HOURLY, rel=1e-3) and ledger["records"] == 1
    assert len(ledger["ends"]) == 1  # which end it was, so that a second addition is noticed
    refused = job.submit(submit_doc(f"{GROUP}/inputs/a.tif", timestamp="next"), maxcost=0.34)
    assert f"spent ${20 * T2_MICRO_HOURLY:.4f}" in refused.message


def summarise(job) -> None:  # type: ignore[no-untyped-def]
    """A post-processing function, as a blueprint's POSTPROCESS would name it."""
    listing = job.s3.list_objects_v2(Bucket=job.bucket, Prefix=f"{job.prefix}/logs/")
    names = sorted(o["Key"].rsplit("/", 1)[-1] for o in listing["Contents"])
    job.s3.put_object(Bucket=job.bucket, Key=f"{job.prefix}/process_results/summary.txt",
                      Body=f"{len(names)} log files, ${job.actual_cost:.4f}\n".encode())


def broken(job) -> None:  # type: ignore[no-untyped-def]
    raise RuntimeError("no such column")


@pytest.mark.parametrize("function,expected", [("summarise", "DONE"), ("broken", "FAILED (RuntimeError: no such column)")])
def test_a_blueprints_postprocess_runs_once_when_the_job_ends(job, function: str, expected: str) -> None:
    at = job.launch + timedelta(minutes=30)
    watcher = Events(job, at, postprocess=f"tests.test_monitor:{function}")
    for instance_id in job.ids * 2:
        watcher.handle(instance_id)

    certificate = job.certificate(JOB)
    assert certificate.count(f"POSTPROCESSING (tests.test_monitor:{function}): {expected}") == 1
    assert "Traceback" not in certificate
    summary = f"{job.job_folder(JOB)}/process_results/summary.txt"
    assert (summary in job.keys()) == (function == "summarise")


def test_postprocess_is_a_blueprint_setting(analysis_settings) -> None:
    from chalicelib.blueprint import AnalysisSettings, validate_blueprint
    settings = analysis_settings.model_copy(update={"postprocess": "chalicelib.post:run"})
    assert AnalysisSettings.from_environ(settings.to_environ()).postprocess == "chalicelib.post:run"
    document = {"PipelineName": "abc", "REGION": "us-east-1", "UXData": {"Affiliates": []}, "Lambda": {
        "LambdaConfig": {"AMI": "ami-12345678", "INSTANCE_TYPE": "t2.micro", "COMMAND": "x {} {} {} {}",
                         "POSTPROCESS": "not a function"}}}
    assert any("POSTPROCESS: must name a function" in p for p in validate_blueprint(document))
