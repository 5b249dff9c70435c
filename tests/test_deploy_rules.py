"""Deploy-side rules AWS enforces and moto does not: linted policies, IAM group quotas, the Lambda
runtime, SDK errors reported as defects, the job manager's connection pool and price."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from chalicelib import awslimits, pricing
from chalicelib.awsclient import PARALLELISM, AWSClient, _failure
from chalicelib.blueprint import AnalysisSettings
from service.deploy import policies
from service.deploy.awsstate import aws_error
from service.deploy.exceptions import DeployError
from service.deploy.records import InitRecord
from service.deploy.runtime import RUNTIME_VARIABLE, lambda_runtime
from tests.deploy_support import Account

SHARED = InitRecord(account="123456789012", region="us-east-1", vpc_id="vpc-1", job_security_group="sg-0job",
                    dev_security_group="sg-0dev", key_name="neurocaas-dev", key_parameter="/neurocaas/keys/neurocaas-dev")
# ec2:RunInstances authorises each resource type separately, so AWS's own examples split it over
# statements; parliament checks each statement alone and reports the types the others hold.
SPLIT_ACTIONS = {"ec2:RunInstances"}


def every_policy() -> dict[str, tuple[dict[str, Any], bool]]:
    """Every IAM policy NeuroCAAS writes, and whether it is a trust policy (which has no Resource)."""
    settings = AnalysisSettings(bucket_name="spikes-test", ami="ami-0123456789abcdef0", instance_type="t2.micro",
                                allowed_instance_types=("t2.micro", "m5.large"), command="{} {} {} {}",
                                bypass_buckets=("shared-results",))
    return {
        "group": (policies.group_policy("spikes-test", "alab"), False),
        "instance trust": (policies.instance_trust_policy(), True),
        "instance": (policies.instance_policy("spikes-test", settings.bypass_buckets), False),
        "ssm agent": (policies.ssm_agent_policy(), False),
        "job manager": (policies.job_manager_policy(settings, "spikes-test", SHARED), False),
        "reaper": (policies.job_manager_policy(settings, "spikes-test", SHARED, reaper=True), False),
    }


@pytest.mark.parametrize("name", sorted(every_policy()))
def test_every_generated_policy_passes_the_linter(name: str) -> None:
    from parliament import analyze_policy_string, enhance_finding

    document, trust = every_policy()[name]
    findings = [enhance_finding(f) for f in analyze_policy_string(json.dumps(document)).findings]
    errors = []
    for finding in findings:
        if trust and finding.issue == "MALFORMED" and "neither Resource" in str(finding.detail):
            continue  # a trust policy names a Principal, never a Resource
        if finding.issue == "RESOURCE_MISMATCH" and {d["action"] for d in finding.detail} <= SPLIT_ACTIONS:
            continue
        if name == "ssm agent" and finding.issue == "RESOURCE_STAR":
            continue  # the agent's actions name no resource (as in AWS's AmazonSSMManagedInstanceCore)
        errors.append((finding.issue, finding.severity, finding.detail))  # even LOW: an unknown action is a typo
    assert errors == []
    for statement in document["Statement"]:
        assert awslimits.POLICY_CHARS.match(json.dumps(statement))


def test_split_run_instances_statements_cover_every_resource_type_together() -> None:
    """What makes the split legal: together the statements name every resource type RunInstances needs."""
    document, _ = every_policy()["job manager"]
    resources = [r for s in document["Statement"] if s["Action"] == "ec2:RunInstances"
                 for r in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])]
    for kind in ("::image/", ":instance/", ":network-interface/", ":security-group/", ":subnet/", ":volume/"):
        assert any(kind in r for r in resources), kind


def test_the_instance_role_policies_fit_a_role_whatever_the_bypass_buckets() -> None:
    many = tuple(f"bypass-{i:02d}-" + "b" * 50 for i in range(20))
    documents = [policies.instance_policy("a" * 63, many), policies.ssm_agent_policy()]
    assert awslimits.inline_policies_problem("role", "r", documents) is None


@pytest.fixture
def account(aws_mock: None, tmp_path: Path) -> Account:
    made = Account(tmp_path)
    made.init()
    return made


def test_users_add_refuses_a_user_already_in_ten_groups(account: Account) -> None:
    from service.deploy.commands import change_members

    blueprint = account.blueprint(groups={"alab": []})
    account.deploy(blueprint)
    iam = account.clients("iam")
    iam.create_user(UserName="busy")
    for i in range(10):
        iam.create_group(GroupName=f"other-{i}")
        iam.add_user_to_group(GroupName=f"other-{i}", UserName="busy")

    with pytest.raises(DeployError, match="is in 10 IAM group.*allows 10"):
        change_members(account.clients, blueprint, "alab", ["busy"])
    assert iam.list_groups_for_user(UserName="busy")["Groups"][0]["GroupName"].startswith("other-")
    assert len(iam.list_groups_for_user(UserName="busy")["Groups"]) == 10


def test_deploy_plan_refuses_a_user_the_blueprint_would_put_in_an_eleventh_group(account: Account) -> None:
    iam = account.clients("iam")
    iam.create_user(UserName="busy")
    for i in range(9):
        iam.create_group(GroupName=f"other-{i}")
        iam.add_user_to_group(GroupName=f"other-{i}", UserName="busy")
    with pytest.raises(DeployError, match="busy is in 9 IAM group.*would join 2 more"):
        account.deploy(account.blueprint(groups={"alab": ["busy"], "blab": ["busy"]}), plan_only=True)


def test_affiliates_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    from service.deploy.commands import check_blueprint

    with pytest.raises(DeployError, match="differ only in case"):
        check_blueprint(Account(tmp_path).blueprint(groups={"Lab": [], "lab": []}))


def test_the_runtime_is_a_supported_one_whatever_python_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RUNTIME_VARIABLE, raising=False)
    assert lambda_runtime((3, 11)) == "python3.12"
    assert lambda_runtime((3, 13)) == "python3.13"
    assert lambda_runtime((3, 99)) in awslimits.SUPPORTED_RUNTIMES
    assert lambda_runtime() in awslimits.SUPPORTED_RUNTIMES


def test_an_unsupported_runtime_is_refused_before_any_change(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RUNTIME_VARIABLE, "python3.11")
    with pytest.raises(DeployError, match="no longer creates or updates python3.11"):
        account.deploy(account.blueprint())
    assert "spikes-test" not in [b["Name"] for b in account.clients("s3").list_buckets()["Buckets"]]


def test_chalice_runs_with_the_chosen_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    import chalice.config

    from service.deploy import runtime

    monkeypatch.setattr(chalice.config.Config, "lambda_python_version", chalice.config.Config.lambda_python_version)
    monkeypatch.setenv(RUNTIME_VARIABLE, "python3.13")
    monkeypatch.setattr("sys.argv", ["chalice", "--version"])
    with pytest.raises(SystemExit) as ended:
        runtime.main()
    assert ended.value.code in (0, None)
    assert chalice.config.Config().lambda_python_version == "python3.13"


def test_a_request_the_sdk_refuses_is_a_defect_not_a_network_problem() -> None:
    error = ParamValidationError(report="Unknown parameter in input: \"IfNoneMatch\"")
    deploy_message = str(aws_error("writing", error))
    job_message = _failure("writing s3://b/k", error).message
    for message in (deploy_message, job_message):
        assert "defect" in message and "reach AWS" not in message and "network" not in message.replace("not a network", "")


def test_the_connection_pool_matches_the_handlers_parallelism(aws_mock: None) -> None:
    """botocore keeps 10 connections unless told: no handler's thread pool may outgrow the client's."""
    from chalicelib.facts import S3_CONCURRENCY
    from chalicelib.jobstate import markers, reconcile
    from chalicelib.monitor import control

    client = AWSClient.create("us-east-1")
    pools = (S3_CONCURRENCY, markers.READ_CONCURRENCY, reconcile.READ_CONCURRENCY, control.WRITE_CONCURRENCY)
    assert client.s3.meta.config.max_pool_connections == PARALLELISM == max(pools)


def test_estimates_include_the_public_ipv4_charge() -> None:
    assert pricing.estimate("t2.micro", 10, 60) == pytest.approx(10 * (0.0116 + pricing.PUBLIC_IPV4_HOURLY))


def test_deploy_closes_the_bucket_an_earlier_shared_instance_role_opened(account: Account) -> None:
    iam = account.clients("iam")
    iam.create_role(RoleName="neurocaas-instance", AssumeRolePolicyDocument=json.dumps(policies.instance_trust_policy()))
    iam.put_role_policy(RoleName="neurocaas-instance", PolicyName="neurocaas-spikes-test",
                        PolicyDocument=json.dumps(policies.instance_policy("spikes-test")))

    account.deploy(account.blueprint())

    assert iam.list_role_policies(RoleName="neurocaas-instance")["PolicyNames"] == []
    assert account.deploy(account.blueprint()).plan.empty
