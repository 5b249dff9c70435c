"""The rulebook (chalicelib/awslimits.py) and what it catches: each defect AWS would refuse and moto does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib import awslimits
from chalicelib.paths import group_of
from service.deploy import naming
from service.deploy.exceptions import DeployError
from service.deploy.init import SECURITY_GROUPS, SSH_DESCRIPTION
from tests.deploy_support import Account


@pytest.fixture
def account(aws_mock: None, tmp_path: Path) -> Account:
    return Account(tmp_path)


@pytest.mark.parametrize(("service", "operation", "params", "expected"), [
    ("ec2", "create_security_group", {"GroupName": "g", "Description": "the developers' CIDR"}, "character"),
    ("ec2", "run_instances", {"UserData": "x" * (16 * 1024 + 1)}, "16384"),
    ("ec2", "run_instances", {"MetadataOptions": {"HttpTokens": "required"}}, "HopLimit"),
    ("ec2", "run_instances", {"TagSpecifications": [{"ResourceType": "instance",
                                                     "Tags": [{"Key": "job", "Value": "j" * 257}]}]}, "256"),
    ("ec2", "run_instances", {"ClientToken": "t" * 65}, "ASCII"),
    ("iam", "create_role", {"RoleName": "r" * 65}, "1-64"),
    ("iam", "create_group", {"GroupName": "g" * 129}, "1-128"),
    ("iam", "create_user", {"UserName": "ünïcode"}, "character"),
    ("iam", "put_group_policy", {"GroupName": "g", "PolicyName": "p", "PolicyDocument": "x" * 5121}, "5120"),
    ("ssm", "put_parameter", {"Name": "/a" * 16}, "levels"),
    ("ssm", "put_parameter", {"Name": "/aws/x"}, "aws or ssm"),
    ("logs", "put_retention_policy", {"logGroupName": "/aws/lambda/f", "retentionInDays": 10}, "periods"),
    ("lambda", "put_function_event_invoke_config", {"FunctionName": "f", "MaximumRetryAttempts": 3}, "0, 1 or 2"),
    ("sqs", "create_queue", {"QueueName": "q" * 81}, "1-80"),
])
def test_the_rulebook_refuses_what_aws_refuses(service: str, operation: str, params: dict[str, Any],
                                               expected: str) -> None:
    [problem] = awslimits.check_call(service, operation, params)
    assert expected in problem and operation in problem


def test_the_rulebook_accepts_the_limits_themselves() -> None:
    assert awslimits.check_call("iam", "create_role", {"RoleName": "r" * 64}) == []
    assert awslimits.check_call("iam", "create_group", {"GroupName": "g" * 128}) == []
    assert awslimits.check_call("ec2", "run_instances", {
        "UserData": "x" * 16 * 1024, "ClientToken": "t" * 64,
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v" * 256}]}]}) == []
    assert awslimits.tag_value("v" * 256) == "v" * 256
    long_a, long_b = awslimits.tag_value("a" * 300), awslimits.tag_value("a" * 299)
    assert len(long_a) == 256 and long_a != long_b


def test_init_descriptions_are_ones_ec2_accepts() -> None:
    for name, description in SECURITY_GROUPS.items():
        assert awslimits.check_call("ec2", "create_security_group", {"GroupName": name, "Description": description}) == []
    assert awslimits.check_call("ec2", "authorize_security_group_ingress", {"IpPermissions": [
        {"IpRanges": [{"CidrIp": "203.0.113.7/32", "Description": SSH_DESCRIPTION}]}]}) == []


def test_an_interrupted_init_is_completed_by_running_init_again(account: Account,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from service.deploy import executor

    real_call = executor.Executor._call

    def interrupted(self: Any, change: Any, call: Any, outputs: Any) -> None:
        if call.operation == "put_parameter":  # the key pair is made, its private key never stored
            raise DeployError("connection lost")
        real_call(self, change, call, outputs)

    monkeypatch.setattr(executor.Executor, "_call", interrupted)
    with pytest.raises(DeployError, match="connection lost"):
        account.init()
    monkeypatch.setattr(executor.Executor, "_call", real_call)

    again = account.init()

    assert [c.target for c in again.plan.changes] == [f"SSH key pair {naming.KEY_NAME}"]
    assert "PRIVATE KEY" in account.clients("ssm").get_parameter(
        Name=naming.KEY_PARAMETER, WithDecryption=True)["Parameter"]["Value"]
    assert json.loads(again.record.read_text())["key_name"] == naming.KEY_NAME  # type: ignore[union-attr]
    assert account.init().plan.empty


@pytest.mark.parametrize("key", [
    "grp/results/job__a_1/process_results/submissions/x_submit.json",
    "grp/inputs/submissions/submit.json",
    "/submissions/submit.json",
])
def test_a_key_deeper_than_a_group_folder_never_starts_a_job(key: str) -> None:
    assert group_of(key) is None


def test_a_group_submission_is_still_one() -> None:
    assert group_of("grp/submissions/alice_submit.json") == "grp"
