"""The job record under AWS's weaker guarantees (tests/weakaws.py): lost, duplicated and
reordered events, lagging DescribeInstances, slow S3, crashed handlers, outside status writers."""

from __future__ import annotations

import json
import random
import re
import threading
from datetime import timedelta

import boto3
import pytest
from aws_lambda_powertools import Logger

from chalicelib import handlers
from chalicelib.awsclient import AWSClient
from chalicelib.executor import JobExecutor
from chalicelib.jobmanager import JobManager, Outcome
from chalicelib.jobstate.markers import OpenJobs
from chalicelib.jobstate.reconcile import Reconciler
from chalicelib.monitor.control import reap
from chalicelib.monitor.costs import ledger_key
from chalicelib.monitor.legacy import is_record_key
from chalicelib.monitor.statechange import InstanceMonitor
from tests.conftest import GROUP, submit_doc
from tests.weakaws import AsyncInvoker, Crash, EventBus, FakeClock, LaggingEC2, LatentClient, StateEvent, s3_event

JOB = "2026-11-25T10-00-00"
INSTANCES = 1000  # the largest job (MAX_DATASETS); about a minute of moto's time
KEY = f"{GROUP}/submissions/submit.json"
ENDINGS: list[str] = []
ENDINGS_LOCK = threading.Lock()


def count_ending(job) -> None:  # type: ignore[no-untyped-def]
    """A post-processing function: counts how many times a job's end ran it."""
    with ENDINGS_LOCK:
        ENDINGS.append(job.prefix)


def status_key(analysis, label: str) -> str:  # type: ignore[no-untyped-def]
    return f"{analysis.job_folder(JOB)}/logs/DATASET_NAME:{label}_STATUS.txt"


def neurocaas_status(status: str, reason: object) -> dict[str, object]:
    """A status file as NeuroCAAS's own run_main.sh / statusbuilder writes it."""
    return {"status": status, "reason": reason, "job_start": "2026-11-25 10:00:05", "job_finish": "N/A",
            "stdout": ["loading", "done"], "stderr": [], "cpu_usage": "3%", "memory_usage": 12}


def start(analysis, clock: FakeClock, *names: str, **overrides):  # type: ignore[no-untyped-def]
    for name in names:
        analysis.put(f"{GROUP}/inputs/{name}")
    analysis.put(f"{GROUP}/configs/params.yaml", "threshold: 1\n")
    analysis.put(KEY, submit_doc(*(f"{GROUP}/inputs/{n}" for n in names)))
    manager = JobManager(analysis.settings.model_copy(update={"deploy_limit": 1000, "maxcost": 1e6, **overrides}),
                         analysis.aws, clock=clock)
    result = manager.handle_submit(analysis.settings.bucket_name, KEY)
    assert result.outcome is Outcome.STARTED, result.message
    return result.record


def end_figures(analysis) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The job's actual cost as each place that states it says it."""
    folder = analysis.job_folder(JOB)
    history = [json.loads(analysis.get(k)) for k in analysis.keys(f"logs/{GROUP}/") if is_record_key(k)]
    return {
        "job.json": analysis.record(JOB)["actual_cost"],
        "end.txt": float(re.search(r"actual cost \$([0-9.]+)", analysis.get(f"{folder}/process_results/end.txt"))[1]),
        "certificate": float(re.search(r"ACTUAL COST: \$([0-9.]+)", analysis.certificate(JOB))[1]),
        "cost records": round(sum(h["cost"] for h in history), 4),
        "ledger": round(json.loads(analysis.get(ledger_key(GROUP)))["spent"], 4),
    }


def test_1000_instances_finishing_together_lose_no_update_and_the_job_ends_once(analysis) -> None:
    clock = FakeClock()
    names = [f"s{i:04d}.bin" for i in range(INSTANCES)]
    record = start(analysis, clock, *names)
    launched = clock()
    slow_s3 = LatentClient(analysis.s3, 0.001, 0.003, seed=1)  # 100-300 ms per request, scaled by 1/100
    ec2 = LaggingEC2(analysis.ec2, clock)
    aws = AWSClient(slow_s3, ec2, analysis.ssm)
    rng = random.Random(7)
    failing = set(rng.sample(sorted(record.datasets), 10))
    bus = EventBus(drop=0.05, duplicate=0.1, seed=3)

    def instance_finishes(label: str) -> None:
        dataset = record.datasets[label]
        document = neurocaas_status("FAILED", [f"exit code 3 in {label}"]) if label in failing \
            else {"status": "SUCCESS", "reason": "", "command": f"analysed {label}"}
        slow_s3.put_object(Bucket=analysis.settings.bucket_name, Key=dataset.status_key,
                           Body=json.dumps(document).encode())
        at = launched + timedelta(minutes=30, seconds=rng.uniform(0, 60))  # all within one minute
        bus.emit(dataset.instance_id, "shutting-down", at)
        bus.emit(dataset.instance_id, "terminated", at + timedelta(seconds=5))

    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(instance_finishes, sorted(record.datasets)))
    analysis.ec2.terminate_instances(InstanceIds=record.instance_ids)
    ec2.note_terminated(record.instance_ids)
    clock.advance(31 * 60)
    markers = OpenJobs()  # one warm Lambda's cache, shared by its concurrent invocations

    def deliver(event: StateEvent) -> str:
        monitor = InstanceMonitor(aws, analysis.settings.bucket_name, clock, Logger(service="test"),
                                  "tests.test_jobstate:count_ending", open_jobs=markers)
        return monitor.handle(event.instance_id, event.state, event.time)

    ENDINGS.clear()
    outcomes = bus.deliver(deliver)
    assert bus.dropped and len(outcomes) > 2 * len(names)
    assert analysis.record(JOB)["state"] == "RUNNING"  # dropped events: some instances not yet known ended

    clock.advance(120)  # past DescribeInstances' lag
    report = reap(aws, analysis.settings.bucket_name, clock(), postprocess="tests.test_jobstate:count_ending",
                  open_jobs=markers)
    assert set(report.ended) == {e.instance_id for e in bus.dropped if e.state == "terminated"}

    final = analysis.record(JOB)
    assert final["state"] == "FAILED" and final["reason"] == f"10 of {len(names)} dataset(s) did not succeed."
    states = {label: d["state"] for label, d in final["datasets"].items()}
    assert {label for label, s in states.items() if s == "FAILED"} == failing
    assert sum(s == "SUCCESS" for s in states.values()) == len(names) - 10
    assert len(ENDINGS) == 1 and json.loads(analysis.get(ledger_key(GROUP)))["records"] == 1
    figures = end_figures(analysis)
    assert len(set(figures.values())) == 1 and figures["job.json"] > 0, figures
    certificate = analysis.certificate(JOB)
    assert certificate.count("| STATUS: SUCCESS |") == len(names) - 10 and certificate.count("| STATUS: FAILED |") == 10
    assert analysis.keys("logs/open/") == [] and analysis.keys("logs/active/") == []


def test_a_crashed_submit_handler_is_resumed_by_the_reaper(uploaded) -> None:
    clock = FakeClock()
    crashes = {"left": 1}

    class DiesAfterLaunch(JobExecutor):
        def _record_running(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            if crashes["left"]:
                crashes["left"] -= 1
                raise Crash("out of memory")
            super()._record_running(*args, **kwargs)

    manager = JobManager(uploaded.settings, uploaded.aws, clock=clock, executor=DiesAfterLaunch)
    failed: list[dict] = []
    invoker = AsyncInvoker(clock, lambda e: manager.handle_submit(uploaded.settings.bucket_name, KEY), failed.append)
    uploaded.put(KEY, submit_doc(f"{GROUP}/inputs/a.tif", f"{GROUP}/inputs/b.tif"))

    invoker.invoke(s3_event(uploaded.settings.bucket_name, KEY))
    for seconds in (60, 120):  # Lambda's retry finds the claim, takes it for a duplicate and succeeds
        clock.advance(seconds)
        invoker.run_due()
    assert invoker.outcomes == ["Crash", "ok"] and failed == []
    assert uploaded.record(JOB)["state"] == "QUEUED"

    resume = lambda key: manager.handle_submit(uploaded.settings.bucket_name, key)  # noqa: E731
    assert reap(uploaded.aws, uploaded.settings.bucket_name, clock(), resume=resume).resumed == []  # lease holds
    clock.advance(200)
    report = reap(uploaded.aws, uploaded.settings.bucket_name, clock(), resume=resume)

    assert report.resumed == [f"job__{uploaded.settings.bucket_name}_{JOB}"]
    record = uploaded.record(JOB)
    assert record["state"] == "RUNNING" and len(uploaded.instances()) == 2  # the first launch, not a second
    assert sorted(record["instance_ids"]) == sorted(i["InstanceId"] for i in uploaded.instances())


def test_failed_invocations_are_replayed_from_the_dead_letter_queue(uploaded, monkeypatch) -> None:
    clock = FakeClock()
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="neurocaas-failed")["QueueUrl"]
    outage = {"on": True}
    real_get = AWSClient.get_object

    def unreachable(self, ref):  # type: ignore[no-untyped-def]
        if outage["on"]:
            raise RuntimeError("S3 is unreachable")
        return real_get(self, ref)

    monkeypatch.setattr(AWSClient, "get_object", unreachable)
    key = f"{GROUP}/submissions/my run_submit.json"  # a space: the event carries it URL-encoded
    uploaded.put(key, submit_doc(f"{GROUP}/inputs/a.tif"))
    invoker = AsyncInvoker(clock, lambda e: handlers.handle_submit_event(uploaded.settings.bucket_name, key),
                           lambda record: sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(record)))
    token = handlers.configure(lambda bucket: uploaded.settings, lambda region: uploaded.aws,
                               lambda: [uploaded.settings.bucket_name])
    try:
        invoker.invoke(s3_event(uploaded.settings.bucket_name, key))
        for seconds in (60, 180):
            clock.advance(seconds)
            invoker.run_due()
        assert invoker.outcomes == ["RuntimeError"] * 3
        outage["on"] = False
        monkeypatch.setenv("NEUROCAAS_DEAD_LETTER_QUEUE", queue)
        handlers.handle_reaper()
    finally:
        handlers.release(token)
        handlers.reset()

    assert uploaded.record(JOB)["state"] == "RUNNING" and len(uploaded.instances()) == 1
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == []


def test_status_files_in_neurocaas_shapes_written_by_anyone_end_the_job(uploaded) -> None:
    clock = FakeClock()
    record = start(uploaded, clock, "a.tif", "b.tif", "c.tif", "d.tif")
    shapes = {
        "a.tif": neurocaas_status("SUCCESS", ["line one", "line two"]),
        "b.tif": neurocaas_status("FAILED", 1),  # reason a number
        "c.tif": "not json at all",  # unreadable: the instance ended without a result
        "d.tif": {"status": "success", "reason": None, "stdout": None},  # a person, lower case
    }
    for label, body in shapes.items():
        uploaded.put(status_key(uploaded, label), body)
    monitor = InstanceMonitor(uploaded.aws, uploaded.settings.bucket_name, clock, Logger(service="test"),
                              open_jobs=OpenJobs())
    for instance_id in record.instance_ids:
        monitor.handle(instance_id, "terminated", clock() + timedelta(minutes=10))

    final = uploaded.record(JOB)
    assert final["state"] == "FAILED"
    assert {label: d["state"] for label, d in final["datasets"].items()} == {
        "a.tif": "SUCCESS", "b.tif": "FAILED", "c.tif": "FAILED", "d.tif": "SUCCESS"}
    lost = json.loads(uploaded.get(status_key(uploaded, "c.tif")))
    assert "stopped before its dataset reported a result" in lost["reason"]
    certificate = uploaded.certificate(JOB)
    assert "a.tif | STATUS: SUCCESS" in certificate and "LAST COMMAND: done" in certificate
    assert "Traceback" not in certificate


def test_a_dataset_without_a_status_file_reads_as_initializing(uploaded) -> None:
    from service.client import JobRef, NeuroCAASClient

    record = start(uploaded, FakeClock(), "a.tif")

    class Connection:
        def client(self, service: str):  # type: ignore[no-untyped-def]
            return {"s3": uploaded.s3, "ec2": uploaded.ec2}[service]

    ref = JobRef(uploaded.settings.bucket_name, GROUP, JOB, uploaded.settings.bucket_name, uploaded.job_folder(JOB))
    [status] = NeuroCAASClient(Connection()).statuses(ref, record).values()  # type: ignore[arg-type]
    assert status.status == "INITIALIZING" and status.instance == record.instance_ids[0]


def test_the_reaper_ends_a_job_whose_events_were_all_lost_even_once_ec2_forgot_it(uploaded) -> None:
    clock = FakeClock()
    record = start(uploaded, clock, "a.tif", "b.tif")
    ec2 = LaggingEC2(uploaded.ec2, clock, lag=90, forget_after=3600)
    aws = AWSClient(uploaded.s3, ec2, uploaded.ssm)
    for label in record.datasets:
        uploaded.put(status_key(uploaded, label), {"status": "SUCCESS"})
    clock.advance(600)
    ec2.terminate_instances(InstanceIds=record.instance_ids[:1])
    clock.advance(30)
    assert reap(aws, uploaded.settings.bucket_name, clock()).ended == []  # still shutting-down in the listing
    clock.advance(3600)  # the first is forgotten by now; the second ends, and its event is lost too
    ec2.terminate_instances(InstanceIds=record.instance_ids[1:])
    clock.advance(100)

    report = reap(aws, uploaded.settings.bucket_name, clock())

    assert sorted(report.ended) == sorted(record.instance_ids)
    final = uploaded.record(JOB)
    assert final["state"] == "SUCCEEDED" and final["actual_cost"] > 0
    assert Reconciler(aws, clock).reconcile(f"s3://{uploaded.settings.bucket_name}/{uploaded.job_folder(JOB)}") \
        .state.value == "SUCCEEDED"  # reconciling an ended job again changes nothing
    assert uploaded.keys("logs/open/") == []


@pytest.mark.parametrize("count", [1, 100])
def test_a_submission_makes_a_constant_number_of_s3_requests(analysis, count: int) -> None:
    names = [f"x{i:03d}.bin" for i in range(count)]
    for name in names:
        analysis.put(f"{GROUP}/inputs/{name}")
    analysis.put(f"{GROUP}/configs/params.yaml", "threshold: 1\n")
    analysis.put(KEY, submit_doc(*(f"{GROUP}/inputs/{n}" for n in names)))
    calls: list[str] = []
    analysis.s3.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))

    result = analysis.manager(deploy_limit=1000).handle_submit(analysis.settings.bucket_name, KEY)

    assert result.outcome is Outcome.STARTED
    # 14: the analysis card (declared parameters) is read at step 2, and cancel.json before the
    # launch (a cancel that came while the job was queued: nothing is launched)
    assert len(calls) <= 14, calls
    assert "HeadObject" not in calls and not any(k.endswith("_STATUS.txt") for k in analysis.keys())


def test_the_cheap_check_finds_the_first_instance_without_an_end_marker(analysis) -> None:
    from chalicelib.jobstate.markers import PROBE_PAGE, end_key, first_running

    ids = sorted(f"i-{n:017x}" for n in range(3 * PROBE_PAGE + 7))
    prefix = "lab/results/job__x_probe"
    calls: list[str] = []
    analysis.s3.meta.events.register("before-call.s3.ListObjectsV2", lambda **_: calls.append("list"))
    bucket = analysis.settings.bucket_name
    ended = set(random.Random(2).sample(ids, len(ids) - 3))
    for instance_id in ended:
        analysis.put(end_key(prefix, instance_id), b"{}")

    assert first_running(analysis.aws, bucket, prefix, ids) == min(set(ids) - ended)
    for instance_id in sorted(set(ids) - ended)[:-1]:
        analysis.put(end_key(prefix, instance_id), b"{}")
    calls.clear()
    assert first_running(analysis.aws, bucket, prefix, ids) == max(set(ids) - ended)
    assert len(calls) <= 4  # from where the last check stopped, not from the start
    analysis.put(end_key(prefix, max(set(ids) - ended)), b"{}")
    assert first_running(analysis.aws, bucket, prefix, ids) is None
    assert first_running(analysis.aws, bucket, prefix, [*ids, "i-fffffffffffffffff"]) == "i-fffffffffffffffff"
