"""Spot capacity and interruption recovery against moto, with injected EventBridge events."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from chalicelib import handlers
from chalicelib.jobstate.markers import OpenJobs
from chalicelib.monitor.costs import history_key, ledger_key
from chalicelib.monitor.statechange import InstanceMonitor
from chalicelib.jobstate.markers import split_folder
from chalicelib.recovery.relaunch import Relauncher, read_record
from tests.conftest import GROUP, Analysis, submit_doc

JOB = "2026-11-25T10-00-00"
T2_SPOT, T2_ON_DEMAND = 0.0041 + 0.005, 0.0116 + 0.005  # with the public IPv4 address


class Cloud:
    """The analysis with Spot settings, the launches it asked for, and events delivered at given times."""

    def __init__(self, analysis: Analysis, **settings: Any) -> None:
        self.analysis = analysis
        self.settings = analysis.settings.model_copy(update={"spot": "prefer", **settings})
        analysis.aws.spot_history = False  # moto's history is a placeholder price: use the table
        self.requests: list[dict[str, Any]] = []
        self.refuse_spot = ""
        launch = analysis.ec2.run_instances

        def run_instances(**request: Any) -> Any:
            self.requests.append(request)
            if self.refuse_spot and "InstanceMarketOptions" in request:
                raise ClientError({"Error": {"Code": self.refuse_spot, "Message": "no Spot"}}, "RunInstances")
            return launch(**request)

        analysis.ec2.run_instances = run_instances  # type: ignore[method-assign]
        self.open_jobs = OpenJobs()

    def submit(self, *labels: str) -> Any:
        self.analysis.put(f"{GROUP}/submissions/submit.json", submit_doc(*(f"{GROUP}/inputs/{x}" for x in labels)))
        manager = self.analysis.manager(**self.settings.model_dump(exclude={"bucket_name"}))
        return manager.handle_submit(self.settings.bucket_name, f"{GROUP}/submissions/submit.json")

    def relauncher(self) -> Relauncher:
        return Relauncher(self.settings, self.analysis.aws, self.analysis.clock)

    def interrupt(self, instance_id: str, at: datetime) -> str:
        return self.relauncher().interrupted(instance_id, at, self.open_jobs)

    def ended(self, instance_id: str, at: datetime) -> str:
        monitor = InstanceMonitor(self.analysis.aws, self.settings.bucket_name, lambda: at, Logger(service="test"),
                                  open_jobs=self.open_jobs, relauncher=self.relauncher())
        return monitor.handle(instance_id, "terminated", at)

    def report(self, label: str, instance_id: str, status: str = "SUCCESS") -> None:
        self.analysis.put(f"{self.folder}/logs/DATASET_NAME:{label}_STATUS.txt",
                          {"status": status, "instance": instance_id, "reason": ""})

    @property
    def folder(self) -> str:
        return self.analysis.job_folder(JOB)

    def record(self) -> dict[str, Any]:
        return self.analysis.record(JOB)

    def current(self, label: str) -> str:
        return str(self.record()["datasets"][label]["instance_id"])


@pytest.fixture
def cloud(uploaded: Analysis) -> Cloud:
    return Cloud(uploaded)


def test_prefer_launches_on_spot_and_the_certificate_says_so(cloud: Cloud) -> None:
    result = cloud.submit("a.tif", "b.tif")

    assert result.outcome.value == "started"
    assert len(cloud.requests) == 1 and cloud.requests[0]["InstanceMarketOptions"]["MarketType"] == "spot"
    attempts = [d["attempts"] for d in cloud.record()["datasets"].values()]
    assert [a[0]["capacity"] for a in attempts] == ["spot", "spot"]
    assert attempts[0][0]["hourly_price"] == T2_SPOT
    certificate = cloud.analysis.certificate(JOB)
    assert "CAPACITY AND ATTEMPTS:" in certificate and "a.tif: attempt 1 on i-" in certificate
    assert "Spot (SPOT: prefer)" in certificate
    assert "estimated $0.0182 at Spot prices, $0.0332 on-demand" in certificate


def test_spot_refused_falls_back_to_on_demand_in_the_same_step(cloud: Cloud) -> None:
    cloud.refuse_spot = "InsufficientInstanceCapacity"

    result = cloud.submit("a.tif", "b.tif")

    assert result.outcome.value == "started"
    assert ["InstanceMarketOptions" in r for r in cloud.requests] == [True, False]
    dataset = cloud.record()["datasets"]["a.tif"]["attempts"][0]
    assert dataset["capacity"] == "on-demand" and dataset["hourly_price"] == T2_ON_DEMAND
    certificate = cloud.analysis.certificate(JOB)
    assert "No Spot capacity for t2.micro (InsufficientInstanceCapacity); batch 1 starts on-demand." in certificate
    assert "on-demand: AWS refused Spot capacity (InsufficientInstanceCapacity)" in certificate


def test_spot_only_fails_cleanly_when_refused(cloud: Cloud) -> None:
    cloud.settings = cloud.settings.model_copy(update={"spot": "only"})
    cloud.refuse_spot = "MaxSpotInstanceCountExceeded"

    result = cloud.submit("a.tif")

    assert result.outcome.value == "failed" and len(cloud.requests) == 1
    assert "Spot instance quota" in cloud.analysis.certificate(JOB)
    assert cloud.record()["state"] == "FAILED"


def test_an_interruption_warning_relaunches_and_the_job_ends_once_with_every_attempts_cost(cloud: Cloud) -> None:
    result = cloud.submit("a.tif", "b.tif")
    start = result.record.started
    first, other = cloud.current("a.tif"), cloud.current("b.tif")
    cloud.analysis.clock.advance(30 * 60)  # the handler's clock when the warning arrives

    outcome = cloud.interrupt(first, start + timedelta(minutes=30))
    assert outcome.startswith("relaunched a.tif on i-")
    assert cloud.interrupt(first, start + timedelta(minutes=30)).startswith("ignored")  # a duplicate event
    second = cloud.current("a.tif")
    assert second != first and second in cloud.record()["instance_ids"]
    assert len(cloud.requests) == 2 and cloud.requests[1]["MinCount"] == 1
    status = json.loads(cloud.analysis.get(f"{cloud.folder}/logs/DATASET_NAME:a.tif_STATUS.txt"))
    assert status["instance"] == second and [a["instance"] for a in status["attempts"]] == [first, second]

    cloud.report("b.tif", other)
    cloud.ended(other, start + timedelta(hours=1))
    cloud.ended(first, start + timedelta(minutes=32))  # reclaimed two minutes after the warning
    assert cloud.record()["state"] == "RUNNING"
    cloud.report("a.tif", second)
    last = cloud.ended(second, start + timedelta(hours=1, minutes=30))

    assert "end.txt written" in last
    record = cloud.record()
    assert record["state"] == "SUCCEEDED" and record["datasets"]["a.tif"]["state"] == "SUCCESS"
    # 32 min + 60 min + 60 min (the relaunch from the warning on) at the Spot price
    costs = [json.loads(cloud.analysis.get(history_key(GROUP, i)))["cost"] for i in (first, other, second)]
    assert record["actual_cost"] == pytest.approx(sum(costs), abs=1e-4)
    assert sum(costs) == pytest.approx((32 + 60 + 60) / 60 * T2_SPOT, abs=1e-4)
    assert json.loads(cloud.analysis.get(ledger_key(GROUP)))["records"] == 1
    certificate = cloud.analysis.certificate(JOB)
    assert certificate.count("ACTUAL COST") == 1
    assert "(ended: Spot interruption warning at" in certificate and f"attempt 2 on {second}" in certificate


def test_relaunches_stop_at_max_relaunches(cloud: Cloud) -> None:
    cloud.settings = cloud.settings.model_copy(update={"max_relaunches": 1})
    start = cloud.submit("a.tif").record.started
    first = cloud.current("a.tif")
    cloud.interrupt(first, start + timedelta(minutes=5))
    second = cloud.current("a.tif")

    assert "MAX_RELAUNCHES reached" in cloud.interrupt(second, start + timedelta(minutes=9))
    cloud.ended(first, start + timedelta(minutes=7))
    cloud.ended(second, start + timedelta(minutes=11))

    record = cloud.record()
    assert record["state"] == "FAILED" and len(record["datasets"]["a.tif"]["attempts"]) == 2
    assert len(cloud.requests) == 2


def test_an_instance_lost_without_a_report_is_relaunched_on_demand_when_spot_is_never(cloud: Cloud) -> None:
    cloud.settings = cloud.settings.model_copy(update={"spot": "never"})
    start = cloud.submit("a.tif", "b.tif").record.started
    lost = cloud.current("a.tif")

    outcome = cloud.ended(lost, start + timedelta(minutes=3))

    assert "relaunched a.tif" in outcome
    attempts = cloud.record()["datasets"]["a.tif"]["attempts"]
    assert [a["capacity"] for a in attempts] == ["on-demand", "on-demand"]
    assert "its instance stopped before the dataset reported a result" in attempts[1]["why"]
    assert "InstanceMarketOptions" not in cloud.requests[-1]


def test_two_triggers_of_one_relaunch_leave_no_orphan_instance(cloud: Cloud) -> None:
    # The warning and the instance's end both relaunch the dataset. On AWS the shared client token
    # makes them one instance; where they differ (moto, or Spot refused to one of them) the launch
    # that was not recorded is terminated.
    cloud.submit("a.tif")
    first = cloud.current("a.tif")
    folder = f"s3://{cloud.settings.bucket_name}/{cloud.folder}"
    seen_by_both = read_record(cloud.analysis.aws, *split_folder(folder))
    relauncher = cloud.relauncher()

    won = relauncher.relaunch(folder, "a.tif", first, "lost", record=seen_by_both)
    lost = relauncher.relaunch(folder, "a.tif", first, "lost", record=seen_by_both)

    assert won is not None and lost is None and len(cloud.requests) == 3
    reservations = cloud.analysis.ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])["Reservations"]
    alive = {i["InstanceId"] for r in reservations for i in r["Instances"]}
    assert alive == {first, won.instance_id}
    assert [a["instance_id"] for a in cloud.record()["datasets"]["a.tif"]["attempts"]] == [first, won.instance_id]


def test_a_report_from_an_earlier_attempt_does_not_finish_the_dataset(cloud: Cloud) -> None:
    start = cloud.submit("a.tif").record.started
    first = cloud.current("a.tif")
    cloud.interrupt(first, start)
    cloud.report("a.tif", first, "FAILED")  # the reclaimed instance's last words

    cloud.ended(first, start + timedelta(minutes=2))

    assert cloud.record()["state"] == "RUNNING"
    assert cloud.record()["datasets"]["a.tif"]["state"] == "INITIALIZING"


def test_a_job_being_cancelled_is_not_relaunched(cloud: Cloud) -> None:
    start = cloud.submit("a.tif").record.started
    first = cloud.current("a.tif")
    cloud.analysis.put(f"{cloud.folder}/logs/cancel.json", {"by": "the user"})  # a cancel under way

    assert "not relaunched" in cloud.interrupt(first, start)
    cloud.ended(first, start + timedelta(minutes=1))

    assert cloud.record()["state"] == "CANCELLED" and len(cloud.requests) == 1


def test_the_spot_price_history_is_used_where_it_answers(cloud: Cloud) -> None:
    cloud.analysis.aws.spot_history = True  # moto answers 0.00001 for every type

    cloud.submit("a.tif")

    assert cloud.record()["datasets"]["a.tif"]["attempts"][0]["hourly_price"] == 0.00001 + 0.005


def test_the_interruption_event_reaches_the_handler_through_the_chalice_app(cloud: Cloud) -> None:
    import app

    start = cloud.submit("a.tif").record.started
    first = cloud.current("a.tif")
    token = handlers.configure(lambda bucket: cloud.settings, lambda region: cloud.analysis.aws,
                               lambda: [cloud.settings.bucket_name])
    try:
        app.on_spot_interruption({
            "version": "0", "id": "1", "detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
            "account": "123456789012", "time": (start + timedelta(minutes=1)).isoformat(), "region": "us-east-1",
            "resources": [], "detail": {"instance-id": first, "instance-action": "terminate"}}, None)
    finally:
        handlers.release(token)

    assert cloud.current("a.tif") != first


def test_costs_show_what_spot_saved_against_on_demand(cloud: Cloud) -> None:
    from service.costs import spend_by_group

    start = cloud.submit("a.tif").record.started
    first = cloud.current("a.tif")
    cloud.report("a.tif", first)
    cloud.ended(first, start + timedelta(hours=2))

    spend = spend_by_group(cloud.analysis.s3, cloud.settings.bucket_name)[GROUP]
    assert spend.spent == pytest.approx(2 * T2_SPOT, abs=1e-4)
    assert spend.saved == pytest.approx(2 * (T2_ON_DEMAND - T2_SPOT), abs=1e-4)


def test_the_blueprint_keys_are_validated_and_reach_the_lambda_environment() -> None:
    from chalicelib.blueprint import AnalysisSettings, validate_blueprint
    from tests.conftest import NEUROCAAS_BLUEPRINTS

    path = NEUROCAAS_BLUEPRINTS / "cianalysispermastack" / "stack_config_template.json"
    document = json.loads(path.read_text())
    config = document["Lambda"]["LambdaConfig"]
    config.update(SPOT="sometimes", MAX_RELAUNCHES=11)
    problems = validate_blueprint(document)
    assert any(p.startswith("Lambda.LambdaConfig.SPOT: must be \"never\"") for p in problems)
    assert any(p.startswith("Lambda.LambdaConfig.MAX_RELAUNCHES: must be a whole number from 0 to 10") for p in problems)

    config.update(SPOT="prefer", MAX_RELAUNCHES=0)
    assert validate_blueprint(document) == []
    settings = AnalysisSettings.from_blueprint_document(document)
    assert (settings.spot, settings.max_relaunches) == ("prefer", 0)
    assert AnalysisSettings.from_environ(settings.to_environ()) == settings
    assert AnalysisSettings.from_blueprint_document({**document, "Lambda": {"LambdaConfig": {
        k: v for k, v in config.items() if k not in ("SPOT", "MAX_RELAUNCHES")}}}).spot == "never"
