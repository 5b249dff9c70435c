"""NeuroCAAS's own billing records count in budgets and `costs` (CONTRACT section 8), and a
launch AWS refuses for a missing role, key, group or image names it (issue 16)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.awsclient import launch_failure
from chalicelib.jobmanager import Outcome
from chalicelib.monitor.costs import ledger_key
from chalicelib.monitor.legacy import legacy_cost, neurocaas_spent, summary_key
from service.costs import spend_by_group
from tests.conftest import BUCKET, GROUP, Analysis, submit_doc

A = f"{GROUP}/inputs/a.tif"
JOB = "2026-11-25T10-00-00"


def neurocaas_record(instance: str, price: float, start: str | None, end: str | None, **extra: Any) -> dict[str, Any]:
    """A billing record in the shape NeuroCAAS's job manager wrote to logs/{group}/{instance}.json."""
    return {"instance-id": instance, "instance-type": "p3.2xlarge", "spot": False, "price": price,
            "databucket": BUCKET, "datapath": A, "configpath": f"{GROUP}/configs/config.yaml",
            "jobpath": f"{GROUP}/results/job__{BUCKET}_old/", "start": start, "end": end, **extra}


@pytest.mark.parametrize("start, end, dollars", [
    ("2021-03-01T10:00:00Z", "2021-03-01T12:30:00Z", 7.65),   # 2.5 h at $3.06
    ("2021-03-01T10:00:00Z", "2021-03-03T10:00:00Z", 146.88),  # whole days count
    (None, None, 3.06),                                        # no times: one hour, as NeuroCAAS charged
    ("2021-03-01T10:00:00Z", None, 3.06),
])
def test_a_neurocaas_record_costs_its_price_times_its_duration(start, end, dollars) -> None:
    assert legacy_cost(neurocaas_record("i-0abc", 3.06, start, end)) == pytest.approx(dollars)


@pytest.mark.parametrize("document", [{"instance_id": "i-1", "cost": 2.0}, {"instance-id": "i-1"}, [1, 2],
                                      {"instance-id": "i-1", "price": "lots"}])
def test_other_documents_are_not_neurocaas_records(document) -> None:
    assert legacy_cost(document) is None


def _spend_1184(analysis: Analysis) -> None:
    """A group that spent $1184 under NeuroCAAS: 4 records of 100 h at $2.96."""
    for n in range(4):
        analysis.put(f"logs/{GROUP}/i-0{n}.json",
                     neurocaas_record(f"i-0{n}", 2.96, "2021-01-01T00:00:00Z", "2021-01-05T04:00:00Z"))


def test_a_budget_counts_what_the_group_spent_under_neurocaas(uploaded: Analysis) -> None:
    _spend_1184(uploaded)

    result = uploaded.submit(submit_doc(A), key=f"{GROUP}/submissions/submit.json")

    assert result.outcome is Outcome.REFUSED
    certificate = uploaded.certificate(JOB)
    assert "spent $1184.00" in certificate, certificate
    # A budget refusal reads as a step after a passed validation, like every environment refusal.
    assert "STEP 2/4 (Validation): DONE" in certificate
    refusal = certificate.split("STEP 3/4 (Environment Setup): ", 1)[1]
    assert not refusal.startswith("DONE") and "has a budget of" in refusal


def test_records_are_summarised_once_beside_the_projects_own_ledger(analysis: Analysis) -> None:
    _spend_1184(analysis)
    analysis.put(ledger_key(GROUP), {"spent": 5.0, "records": 1})  # this project's own history
    analysis.put(f"logs/{GROUP}/i-0mine.json", {"instance_id": "i-0mine", "cost": 5.0})  # and its record

    assert neurocaas_spent(analysis.aws, BUCKET, GROUP) == pytest.approx(1184.0)
    summary = json.loads(analysis.get(summary_key(GROUP)))
    assert (summary["spent"], summary["records"]) == (pytest.approx(1184.0), 4)

    for n in range(4):  # later checks read the summary alone
        analysis.s3.delete_object(Bucket=BUCKET, Key=f"logs/{GROUP}/i-0{n}.json")
    assert neurocaas_spent(analysis.aws, BUCKET, GROUP) == pytest.approx(1184.0)


def test_a_group_without_neurocaas_records_gets_an_empty_summary(analysis: Analysis) -> None:
    assert neurocaas_spent(analysis.aws, BUCKET, GROUP) == 0.0
    assert json.loads(analysis.get(summary_key(GROUP)))["records"] == 0


def test_costs_show_neurocaas_records_beside_the_projects_own(analysis: Analysis) -> None:
    _spend_1184(analysis)
    analysis.put(f"logs/{GROUP}/i-09.json", neurocaas_record("i-09", 1.0, None, None, jobpath=""))

    spend = spend_by_group(analysis.s3, BUCKET)

    assert spend[GROUP].spent == pytest.approx(1185.0)
    assert spend[GROUP].instances == 5
    assert spend[GROUP].jobs["old"].spent == pytest.approx(1184.0)  # shown by job id, as `costs` does
    assert sum(job.spent for job in spend[GROUP].jobs.values()) == pytest.approx(1185.0)


@pytest.mark.parametrize("code, message, key, value", [
    ("NoSuchEntity", "Instance profile SSMRole not found", "IAM_ROLE", "SSMRole"),
    ("InvalidParameterValue", "Value (SSMRole) for parameter iamInstanceProfile.name is invalid.", "IAM_ROLE", "SSMRole"),
    ("InvalidKeyPair.NotFound", "The key pair 'dev-key' does not exist", "KEY_NAME", "dev-key"),
    ("InvalidGroup.NotFound", "The security group 'web-sg' does not exist", "SECURITY_GROUPS", "web-sg"),
    ("InvalidAMIID.NotFound", "The image id '[ami-0123456789abcdef0]' does not exist", "AMI", "ami-0123456789abcdef0"),
])
def test_a_launch_refused_for_a_missing_resource_names_it_and_its_blueprint_key(code, message, key, value) -> None:
    request = {"ImageId": "ami-0123456789abcdef0", "KeyName": "dev-key", "SecurityGroups": ["web-sg"],
               "IamInstanceProfile": {"Name": "SSMRole"}}
    error = ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")

    failure = launch_failure(error, request)

    assert f"'{value}' ({key})" in failure.message and f"correct {key}" in failure.message
    assert failure.message.startswith("The analysis's blueprint names")


def test_other_launch_refusals_keep_their_advice() -> None:
    error = ClientError({"Error": {"Code": "InsufficientInstanceCapacity", "Message": "none"}}, "RunInstances")

    assert "no capacity" in launch_failure(error, {}).message


def test_a_just_made_instance_profile_is_waited_for_and_a_missing_one_still_named() -> None:
    from chalicelib import awslimits
    from chalicelib.awsclient import AWSClient

    refusal = ClientError({"Error": {"Code": "InvalidParameterValue", "Message": (
        "Value (neurocaas-x) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name")}},
        "RunInstances")

    class SlowIAM:
        def __init__(self, refusals: int) -> None:
            self.refusals, self.requests = refusals, []  # type: ignore[var-annotated]

        def run_instances(self, **request: object) -> dict[str, object]:
            self.requests.append(request)
            if self.refusals:
                self.refusals -= 1
                raise refusal
            return {"Instances": [{"InstanceId": "i-1", "AmiLaunchIndex": 0}]}

    request = {"ImageId": "ami-1", "ClientToken": "t", "IamInstanceProfile": {"Name": "neurocaas-x"}}
    ec2 = SlowIAM(refusals=2)
    aws = AWSClient(None, ec2, None)
    pauses: list[float] = []
    aws.sleep = pauses.append

    assert [i.instance_id for i in aws.run_instances(request)] == ["i-1"]
    assert pauses == list(awslimits.NEW_INSTANCE_PROFILE_WAITS[:2])
    assert all(r["ClientToken"] == "t" for r in ec2.requests)  # one launch, however many requests

    aws.ec2, pauses[:] = SlowIAM(refusals=99), []
    with pytest.raises(Exception, match=r"'neurocaas-x' \(IAM_ROLE\)"):
        aws.run_instances(request)
    assert pauses == list(awslimits.NEW_INSTANCE_PROFILE_WAITS)
    pauses[:] = []
    with pytest.raises(Exception, match=r"'neurocaas-x' \(IAM_ROLE\)"):
        aws.run_instances(request)  # still missing: refused at once, not after another 14 s
    assert pauses == []
