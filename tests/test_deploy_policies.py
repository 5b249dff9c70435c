"""The policy documents: least privilege on paper, and enough for every call the job manager makes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib import handlers
from service.deploy import naming, policies
from service.deploy.records import InitRecord
from tests.deploy_support import Account, recorded_calls

SHARED = InitRecord(account="123456789012", region="us-east-1", vpc_id="vpc-1", job_security_group="sg-0job",
                    dev_security_group="sg-0dev", key_name="neurocaas-dev", key_parameter="/neurocaas/keys/neurocaas-dev")
# What an S3 API call is authorised as, where the names differ.
S3_ACTIONS = {"HeadObject": "GetObject", "ListObjectsV2": "ListBucket", "ListObjects": "ListBucket"}


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**s, "Action": _list(s["Action"]), "Resource": _list(s["Resource"])} for s in policy["Statement"]]


def _list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def iam_match(pattern: str, value: str) -> bool:
    """IAM's wildcard matching (``*`` any run of characters, ``?`` one)."""
    return re.fullmatch(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."), value) is not None


def job_manager_policy(bypass: tuple[str, ...] = ()) -> dict[str, Any]:
    from chalicelib.blueprint import AnalysisSettings

    settings = AnalysisSettings(bucket_name="spikes-test", ami="ami-0123456789abcdef0", instance_type="t2.micro",
                                allowed_instance_types=("t2.micro", "m5.large"), command="{} {} {} {}",
                                bypass_buckets=bypass)
    return policies.job_manager_policy(settings, "spikes-test", SHARED)


def test_the_job_manager_policy_has_no_wildcard_action_and_stays_in_its_bucket() -> None:
    policy = job_manager_policy()
    for statement in statements(policy):
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in statement["Action"]), statement
        for resource in statement["Resource"]:
            if resource == "*":
                # EC2's Describe calls and reading a quota cannot be scoped to resources: the only unscoped ones.
                assert all(a.startswith("ec2:Describe") or a == "servicequotas:GetServiceQuota"
                           for a in statement["Action"]), statement
            elif resource.startswith("arn:aws:s3:::"):
                assert resource in ("arn:aws:s3:::spikes-test", "arn:aws:s3:::spikes-test/*"), resource
            else:
                assert ":123456789012:" in resource or "::image/ami-0123456789abcdef0" in resource, resource
    actions = {a for s in statements(policy) for a in s["Action"]}
    assert "iam:PassRole" in actions and not any(a.startswith(("iam:Create", "iam:Put", "iam:Attach")) for a in actions)
    passing = [s for s in statements(policy) if "iam:PassRole" in s["Action"]]
    # only the analysis's own instance role: no other analysis's instances can be given its bucket
    assert [s["Resource"] for s in passing] == [["arn:aws:iam::123456789012:role/neurocaas-spikes-test"]]
    assert "AdministratorAccess" not in json.dumps(policy)


def test_launches_are_limited_to_the_image_group_tags_and_instance_types() -> None:
    launch = [s for s in statements(job_manager_policy()) if "ec2:RunInstances" in s["Action"]]
    resources = {r for s in launch for r in s["Resource"]}
    assert "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0" in resources
    assert "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0job" in resources
    assert not any(r.endswith(("image/*", "security-group/*")) for r in resources)
    instance = next(s for s in launch if s["Resource"] == ["arn:aws:ec2:us-east-1:123456789012:instance/*"])
    assert instance["Condition"]["StringEquals"] == {"aws:RequestTag/analysis": "spikes-test",
                                                      "ec2:InstanceType": ["m5.large", "t2.micro"]}
    stop = next(s for s in statements(job_manager_policy()) if s["Action"] == ["ec2:TerminateInstances"])
    assert stop["Condition"]["StringEquals"] == {"aws:ResourceTag/analysis": "spikes-test"}


def test_bypass_buckets_are_the_only_other_buckets() -> None:
    s3 = {r for s in statements(job_manager_policy(("shared-results",))) for r in s["Resource"] if ":s3:::" in r}
    assert s3 == {"arn:aws:s3:::spikes-test", "arn:aws:s3:::spikes-test/*",
                  "arn:aws:s3:::shared-results", "arn:aws:s3:::shared-results/*"}


def test_the_policy_names_every_function_of_the_app() -> None:
    import app

    assert sorted(app.app.handler_map) == sorted(policies.LAMBDA_HANDLERS)


def test_the_group_policy_is_neurocaas_pattern_with_its_bugs_fixed() -> None:
    policy = statements(policies.group_policy("spikes-test", "alab"))
    grants = {(a, r) for s in policy if "Condition" not in s for a in s["Action"] for r in s["Resource"]}
    folder = "arn:aws:s3:::spikes-test/alab"
    assert grants == {
        ("s3:GetBucketLocation", "arn:aws:s3:::spikes-test"),
        *{(a, f"{folder}/{f}/*") for a in ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload")
          for f in ("inputs", "configs", "submissions")},
        *{(a, f"{folder}/{f}/*") for a in ("s3:GetObject", "s3:DeleteObject") for f in ("results", "configs")},
        ("s3:GetObject", "arn:aws:s3:::spikes-test/analysis.json"),  # the analysis card, checked before uploading
    }
    listing, = [s for s in policy if "Condition" in s]
    assert listing["Action"] == ["s3:ListBucket"] and listing["Resource"] == ["arn:aws:s3:::spikes-test"]
    prefixes = listing["Condition"]["StringLike"]["s3:prefix"]

    def lists(prefix: str) -> bool:
        return any(iam_match(p, prefix) for p in prefixes)

    assert all(lists(p) for p in ("alab/", "alab/inputs/", "alab/results/job__spikes-test_1/logs/"))
    # NeuroCAAS let every group list the top level and logs/, which named every other group.
    assert not any(lists(p) for p in ("", "logs", "logs/", "blab/", "alab2/", "alab"))
    assert all(r != "*" for s in policy for r in s["Resource"])


def test_the_instance_policy_reads_inputs_and_writes_results_only() -> None:
    policy = statements(policies.instance_policy("spikes-test"))
    grants = {(a, r) for s in policy for a in s["Action"] for r in s["Resource"]}
    assert ("s3:PutObject", "arn:aws:s3:::spikes-test/*/results/*") in grants
    assert not any(a == "s3:PutObject" and "results" not in r for a, r in grants)
    assert not any(a == "s3:DeleteObject" for a, _ in grants)


@pytest.fixture
def deployed(aws_mock: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    account = Account(tmp_path)
    account.init()
    account.deploy(account.blueprint(ALLOWED_INSTANCE_TYPES=["t2.micro"]))
    config = json.loads((account.project / ".chalice" / "config.json").read_text())
    for name, value in {**config["environment_variables"],
                        **config["stages"]["spikes-test"]["environment_variables"]}.items():
        monkeypatch.setenv(name, value)
    handlers.reset()
    yield account
    handlers.reset()


def test_the_job_manager_with_the_deployed_stage_makes_only_calls_its_policy_allows(deployed: Account) -> None:
    s3, bucket = deployed.clients("s3"), "spikes-test"
    s3.put_object(Bucket=bucket, Key="alab/inputs/a.bin", Body=b"data")
    s3.put_object(Bucket=bucket, Key="alab/configs/params.yaml", Body=b"__dataset_size__: 5\n")
    s3.put_object(Bucket=bucket, Key="alab/submissions/submit.json", Body=json.dumps(
        {"dataname": ["alab/inputs/a.bin"], "configname": "alab/configs/params.yaml", "timestamp": "job1"}).encode())
    s3.put_object(Bucket=bucket, Key="alab/submissions/cancel.json", Body=b'{"timestamp": "job1"}')

    with recorded_calls() as calls:
        result = handlers.handle_submit_event(bucket, "alab/submissions/submit.json")
        instance, = result.record.instance_ids
        handlers.handle_instance_state(instance, "running")
        handlers.handle_cancel_event(bucket, "alab/submissions/cancel.json")
        handlers.handle_instance_state(instance, "terminated")
    with recorded_calls() as reaper_calls:
        handlers.handle_reaper()

    assert result.outcome.value == "started", result.message
    chalice_dir = deployed.project / ".chalice"
    for made_by, policy_file in ((calls, "policy-spikes-test.json"), (reaper_calls, "policy-spikes-test-reaper.json")):
        policy = json.loads((chalice_dir / policy_file).read_text())
        allowed = {a for s in statements(policy) for a in s["Action"]}
        made = {f"{service}:{S3_ACTIONS.get(op, op) if service == 's3' else op}" for service, op, _ in made_by}
        assert made - allowed == set(), policy_file
    # the dead-letter queue is read by the reaper alone
    assert "sqs:ReceiveMessage" in {f"{s}:{op}" for s, op, _ in reaper_calls}
    main_policy = json.loads((chalice_dir / "policy-spikes-test.json").read_text())
    assert not any(a in ("sqs:ReceiveMessage", "sqs:DeleteMessage") for st in statements(main_policy) for a in st["Action"])
    made = {f"{service}:{S3_ACTIONS.get(op, op) if service == 's3' else op}" for service, op, _ in calls}
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "ssm:GetParameter", "ec2:DescribeImages"} <= made
    assert {p["Bucket"] for service, _, p in calls if service == "s3"} == {bucket}
    assert {p["Name"] for _, op, p in calls if op == "GetParameter"} == {naming.budget_parameter("alab", bucket)}

    launch, = [p for _, op, p in calls if op == "RunInstances"]
    record = json.loads(next(deployed.home.rglob("init.json")).read_text())
    assert launch["ImageId"] == deployed.ami and launch["SecurityGroupIds"] == [record["job_security_group"]]
    assert launch["IamInstanceProfile"] == {"Name": naming.instance_profile(bucket)} and "KeyName" not in launch
    assert launch["MetadataOptions"]["HttpTokens"] == "required"
    assert launch["MetadataOptions"]["HttpPutResponseHopLimit"] == 2  # containers on the instance get credentials
    assert launch["InstanceType"] == "t2.micro"
    for spec in launch["TagSpecifications"]:
        assert {"Key": "analysis", "Value": bucket} in spec["Tags"]
    assert {s["ResourceType"] for s in launch["TagSpecifications"]} == {"instance", "volume"}


def test_the_ssm_agent_policy_has_only_agent_actions() -> None:
    from service.deploy.policies import ssm_agent_policy

    [statement] = ssm_agent_policy()["Statement"]
    assert all(a.split(":")[0] in ("ssm", "ssmmessages", "ec2messages") and "*" not in a for a in statement["Action"])
    assert not any(a.startswith("ssm:GetParameter") for a in statement["Action"])
