"""``neurocaas init | deploy | destroy | users`` against a moto account."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from chalicelib import agent, awslimits
from service.deploy import naming
from service.deploy.exceptions import DeployError
from tests.deploy_support import Account, changing, recorded_calls, snapshot


@pytest.fixture
def account(aws_mock: None, tmp_path: Path) -> Account:
    made = Account(tmp_path)
    made.users("alice", "bob")
    return made


def test_provisioning_twice_yields_identical_state(account: Account) -> None:
    blueprint = account.blueprint()
    first_init, first_deploy = account.init(), account.deploy(blueprint)
    after_first = snapshot(account)

    second_init, second_deploy = account.init(), account.deploy(blueprint)

    assert first_init.plan.changes and first_deploy.plan.changes
    assert second_init.plan.empty and second_deploy.plan.empty, second_deploy.plan.describe()
    assert snapshot(account) == after_first
    assert [call[0] for call in account.chalice.calls] == [["deploy", "--stage", "spikes-test"]]


def test_deploy_makes_what_the_issue_asks_for(account: Account) -> None:
    account.init()
    blueprint = account.blueprint()
    account.deploy(blueprint)
    s3, iam, ssm = account.clients("s3"), account.clients("iam"), account.clients("ssm")

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="spikes-test")["Contents"]]
    assert sorted(keys) == sorted([*(f"{g}/{f}/" for g in ("alab", "blab") for f in naming.GROUP_FOLDERS),
                                   agent.artifact_key(), "analysis.json"])  # + the analysis card
    body = s3.get_object(Bucket="spikes-test", Key=agent.artifact_key())["Body"].read()
    assert hashlib.sha256(body).hexdigest() == agent.SHA256  # what the boot script will accept
    card = json.loads(s3.get_object(Bucket="spikes-test", Key="analysis.json")["Body"].read())
    assert card["instance_types"] == list(blueprint.settings.instance_types_allowed)
    assert card["deploy_limit"] == blueprint.settings.deploy_limit
    assert all(s3.get_public_access_block(Bucket="spikes-test")["PublicAccessBlockConfiguration"].values())
    rules = s3.get_bucket_encryption(Bucket="spikes-test")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert [u["UserName"] for u in iam.get_group(GroupName="spikes-test.alab")["Users"]] == ["alice"]
    assert ssm.get_parameter(Name="/neurocaas/budgets/blab/spikes-test")["Parameter"]["Value"] == "40"
    role = naming.instance_role("spikes-test")
    assert sorted(iam.list_role_policies(RoleName=role)["PolicyNames"]) == [naming.INSTANCE_POLICY,
                                                                             naming.SSM_AGENT_POLICY]
    assert [r["RoleName"] for r in iam.get_instance_profile(InstanceProfileName=role)["InstanceProfile"]["Roles"]] == [role]

    chalice_dir = account.project / ".chalice"
    stage = json.loads((chalice_dir / "config.json").read_text())["stages"]["spikes-test"]
    assert stage["autogen_policy"] is False and stage["iam_policy_file"] == "policy-spikes-test.json"
    assert stage["environment_variables"]["IAM_ROLE"] == naming.instance_profile("spikes-test")
    assert stage["log_retention_in_days"] in awslimits.RETENTION_DAYS
    assert stage["lambda_functions"]["on_submit"]["reserved_concurrency"] > 0
    queue = account.clients("sqs").get_queue_url(QueueName="neurocaas-spikes-test-failed")["QueueUrl"]
    assert stage["environment_variables"]["NEUROCAAS_DEAD_LETTER_QUEUE"] == queue
    functions = account.clients("lambda")
    for handler in naming.LAMBDA_HANDLERS:
        invoke = functions.get_function_event_invoke_config(FunctionName=f"neurocaas-spikes-test-{handler}")
        assert invoke["DestinationConfig"]["OnFailure"]["Destination"].endswith(":neurocaas-spikes-test-failed")
    record = json.loads(next(account.home.rglob("init.json")).read_text())
    assert json.loads(stage["environment_variables"]["SECURITY_GROUPS"]) == [record["job_security_group"]]
    assert json.loads((chalice_dir / "policy-spikes-test.json").read_text())["Statement"]
    (args, cwd, env), = account.chalice.calls
    assert args == ["deploy", "--stage", "spikes-test"] and cwd == account.project
    assert env["BUCKET_NAME"] == "spikes-test" and env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["NEUROCAAS_LAMBDA_RUNTIME"] in awslimits.SUPPORTED_RUNTIMES


def test_unfinished_uploads_are_cleaned_up_and_a_buckets_own_lifecycle_rules_are_kept(account: Account) -> None:
    account.init()
    s3 = account.clients("s3")
    s3.create_bucket(Bucket="spikes-test")  # a NeuroCAAS bucket from before, with its own rule
    own = {"ID": "expire-scratch", "Status": "Enabled", "Filter": {"Prefix": "scratch/"}, "Expiration": {"Days": 30}}
    s3.put_bucket_lifecycle_configuration(Bucket="spikes-test", LifecycleConfiguration={"Rules": [own]})

    first = account.deploy(account.blueprint())

    assert "remove unfinished uploads after 7 days (its 1 lifecycle rule(s) kept)" in first.plan.describe()
    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket="spikes-test")["Rules"]}
    assert rules["expire-scratch"]["Expiration"] == {"Days": 30}
    abort = rules["neurocaas-abort-unfinished-uploads"]
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": awslimits.ABORT_UPLOADS_AFTER_DAYS}
    assert abort["Status"] == "Enabled" and abort["Filter"] == {"Prefix": ""}
    assert account.deploy(account.blueprint()).plan.empty


def test_a_bucket_with_the_most_lifecycle_rules_is_refused_before_any_change(account: Account) -> None:
    account.init()
    s3 = account.clients("s3")
    s3.create_bucket(Bucket="spikes-test")
    rules = [{"ID": f"rule-{n}", "Status": "Enabled", "Filter": {"Prefix": f"p{n}/"}, "Expiration": {"Days": 9}}
             for n in range(awslimits.LIFECYCLE_RULES_MAX)]
    s3.put_bucket_lifecycle_configuration(Bucket="spikes-test", LifecycleConfiguration={"Rules": rules})

    with recorded_calls() as calls, pytest.raises(DeployError, match="already has 1000 lifecycle rules"):
        account.deploy(account.blueprint())
    assert changing(calls) == []


def test_a_spot_analysis_gets_the_accounts_spot_service_linked_role_once(account: Account) -> None:
    account.init()
    iam = account.clients("iam")
    spot_roles = lambda: iam.list_roles(PathPrefix=awslimits.SPOT_SERVICE_ROLE_PATH)["Roles"]  # noqa: E731

    account.deploy(account.blueprint())  # SPOT never: the account is left as it is
    assert spot_roles() == []
    first = account.deploy(account.blueprint(SPOT="prefer"))

    assert "EC2 Spot service-linked role" in first.plan.describe()
    role, = spot_roles()
    assert role["Path"] == "/aws-service-role/spot.amazonaws.com/"
    assert account.deploy(account.blueprint(SPOT="prefer")).plan.empty
    assert not account.deploy(account.blueprint("lfp-test", SPOT="only")).plan.describe().count("Spot service-linked")


def test_an_existing_budget_is_kept_and_changes_are_redeployed(account: Account) -> None:
    account.init()
    account.clients("ssm").put_parameter(Name="/neurocaas/budgets/alab/spikes-test", Value="7", Type="String")
    account.deploy(account.blueprint())

    changed = account.deploy(account.blueprint(MAXCOST=99, DEPLOY_LIMIT=3, groups={"alab": ["alice"]}))

    budgets = account.clients("ssm").get_parameters_by_path(Path="/neurocaas/budgets", Recursive=True)["Parameters"]
    assert {p["Name"]: p["Value"] for p in budgets} == {"/neurocaas/budgets/alab/spikes-test": "7"}
    targets = [c.target for c in changed.plan.changes]
    assert "IAM group spikes-test.blab" in targets and "chalice deploy --stage spikes-test" in targets
    assert "spikes-test.blab" not in [g["GroupName"] for g in account.clients("iam").list_groups()["Groups"]]
    assert len(account.chalice.calls) == 2


def test_init_security_groups_key_and_record(account: Account) -> None:
    outcome = account.init()
    ec2, ssm = account.clients("ec2"), account.clients("ssm")
    record = json.loads(outcome.record.read_text())

    job, dev = (ec2.describe_security_groups(GroupIds=[record[k]])["SecurityGroups"][0]
                for k in ("job_security_group", "dev_security_group"))
    assert job["IpPermissions"] == []
    assert [(p["FromPort"], [r["CidrIp"] for r in p["IpRanges"]]) for p in dev["IpPermissions"]] == [
        (22, ["203.0.113.7/32"])]
    stored = ssm.get_parameter(Name=naming.KEY_PARAMETER, WithDecryption=True)["Parameter"]
    assert stored["Type"] == "SecureString" and "PRIVATE KEY" in stored["Value"]
    assert outcome.record == account.home / "aws" / f"123456789012-{account.clients.region}" / "init.json"
    assert stored["Value"] not in outcome.plan.describe(verbose=True)

    narrowed = account.init(ssh_cidr="198.51.100.0/24")
    assert [c.target.split(" (")[0] for c in narrowed.plan.changes] == ["security group neurocaas-dev"]
    assert json.loads(outcome.record.read_text())["ssh_cidr"] == "198.51.100.0/24"


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0", "not-an-address"])
def test_init_refuses_ssh_from_anywhere(account: Account, cidr: str) -> None:
    with pytest.raises(DeployError, match="ssh-cidr"):
        account.init(ssh_cidr=cidr)
    assert account.clients("iam").list_roles()["Roles"] == []


def test_without_a_cidr_the_development_group_has_no_inbound_rule(account: Account) -> None:
    outcome = account.init(ssh_cidr=None)
    assert any("--ssh-cidr" in note for note in outcome.plan.notes)
    assert json.loads(outcome.record.read_text())["ssh_cidr"] is None


def test_plan_makes_no_call_that_changes_anything(account: Account) -> None:
    blueprint = account.blueprint()
    with recorded_calls() as calls:
        planned_init = account.init(plan_only=True)
    assert calls and changing(calls) == [] and planned_init.plan.changes
    assert not planned_init.record.exists()

    account.init()
    config_before = (account.project / ".chalice" / "config.json").read_text()
    with recorded_calls() as calls:
        planned = account.deploy(blueprint, plan_only=True)
    assert calls and changing(calls) == []
    assert len(planned.plan.changes) >= 7 and not planned.applied
    assert (account.project / ".chalice" / "config.json").read_text() == config_before
    assert not (account.project / ".chalice" / "policy-spikes-test.json").exists()
    assert account.chalice.calls == []

    account.deploy(blueprint)
    with recorded_calls() as calls:
        planned_destroy = account.destroy(blueprint, plan_only=True, delete_data=True)
    assert changing(calls) == [] and planned_destroy.plan.changes
    assert len(account.chalice.calls) == 1


@pytest.mark.parametrize("change,message", [
    ({"PipelineName": "Bad_Name"}, "PipelineName"),
    ({"PipelineName": "xn--reserved"}, "reserves"),
    ({"Lambda": {"LambdaConfig": {"INSTANCE_TYPE": "t2.micro"}}}, "AMI: is missing"),
])
def test_a_bad_blueprint_is_refused_before_anything_is_created(account: Account, change: dict, message: str) -> None:
    from chalicelib.blueprint import Blueprint
    from chalicelib.exceptions import BlueprintError

    document = {**account.blueprint().document, **change}
    with recorded_calls() as calls, pytest.raises((BlueprintError, DeployError)) as refused:
        account.deploy(Blueprint.from_document(document))
    assert message in str(refused.value) + " ".join(getattr(refused.value, "problems", ()))
    assert calls == []


def test_deploy_refuses_an_image_that_does_not_exist_and_a_missing_init(account: Account) -> None:
    with pytest.raises(DeployError, match="neurocaas init --region us-east-1"):
        account.deploy(account.blueprint())
    account.init()
    with recorded_calls() as calls, pytest.raises(DeployError, match="machine image ami-0123456789abcdef0"):
        account.deploy(account.blueprint(AMI="ami-0123456789abcdef0"))
    assert changing(calls) == []


def test_destroy_refuses_while_jobs_run_and_keeps_data_without_the_flag(account: Account) -> None:
    account.init()
    blueprint = account.blueprint()
    account.deploy(blueprint)
    s3, ec2 = account.clients("s3"), account.clients("ec2")
    s3.put_object(Bucket="spikes-test", Key="alab/inputs/data.bin", Body=b"precious")
    launched = ec2.run_instances(ImageId=account.ami, MinCount=1, MaxCount=1, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "analysis", "Value": "spikes-test"}]}])["Instances"][0]

    with pytest.raises(DeployError, match="pending or running"):
        account.destroy(blueprint)
    ec2.terminate_instances(InstanceIds=[launched["InstanceId"]])
    kept = account.destroy(blueprint)

    assert any("--delete-data" in note for note in kept.plan.notes)
    assert s3.get_object(Bucket="spikes-test", Key="alab/inputs/data.bin")["Body"].read() == b"precious"
    assert [c[0] for c in account.chalice.calls][-1] == ["delete", "--stage", "spikes-test"]
    assert account.clients("iam").list_groups(PathPrefix="/neurocaas/")["Groups"] == []
    # the analysis's own instance role, its profile and its dead-letter queue are gone
    assert account.clients("iam").list_instance_profiles()["InstanceProfiles"] == []
    assert naming.instance_role("spikes-test") not in [r["RoleName"] for r in account.clients("iam").list_roles()["Roles"]]
    assert account.clients("sqs").list_queues().get("QueueUrls", []) == []
    assert "spikes-test" not in json.loads((account.project / ".chalice" / "config.json").read_text())["stages"]
    assert account.destroy(blueprint).plan.notes == kept.plan.notes

    account.destroy(blueprint, delete_data=True)
    assert "spikes-test" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert account.destroy(blueprint).plan.empty


def test_a_failed_chalice_deploy_is_retried_next_time(account: Account) -> None:
    account.init()
    blueprint = account.blueprint()
    account.chalice.exit_code = 2
    with pytest.raises(DeployError, match="chalice deploy --stage spikes-test` failed"):
        account.deploy(blueprint)

    account.chalice.exit_code = 0
    again = account.deploy(blueprint)

    assert [c.target for c in again.plan.changes] == ["chalice deploy --stage spikes-test"]
    assert account.deploy(blueprint).plan.empty


def test_users_add_remove_and_list(account: Account) -> None:
    from service.deploy import commands

    account.init()
    blueprint = account.blueprint()
    account.deploy(blueprint)
    account.users("carol")

    added = commands.change_members(account.clients, blueprint, "alab", ["carol", "alice"])
    assert [c.detail for c in added.plan.changes] == ["add carol"]
    assert commands.members(account.clients, blueprint, "alab") == ("alice", "carol")
    with pytest.raises(DeployError, match="pass --create"):
        commands.change_members(account.clients, blueprint, "alab", ["dave"])
    commands.change_members(account.clients, blueprint, "alab", ["dave"], create=True)
    commands.change_members(account.clients, blueprint, "alab", ["alice"], remove=True)
    assert commands.members(account.clients, blueprint, "alab") == ("carol", "dave")
    with pytest.raises(DeployError, match="no group 'zlab'.*alab, blab"):
        commands.members(account.clients, blueprint, "zlab")
    assert account.deploy(blueprint).plan.changes[0].detail == "add members alice"


def test_old_style_rules_and_the_transition_minimum_size_survive_the_lifecycle_rewrite() -> None:
    from service.deploy.bucket import _lifecycle

    old = {"ID": "old", "Prefix": "tmp/", "Status": "Enabled", "Expiration": {"Days": 3}}
    call = _lifecycle("b", (old,), "varies_by_storage_class")

    rules = call.params["LifecycleConfiguration"]["Rules"]
    assert rules[0] == {"ID": "old", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled", "Expiration": {"Days": 3}}
    assert all("Prefix" not in rule for rule in rules)
    assert call.params["TransitionDefaultMinimumObjectSize"] == "varies_by_storage_class"


def test_a_deploy_after_the_agent_changed_uploads_the_new_agent(account: Account) -> None:
    account.init()
    account.deploy(account.blueprint())
    s3 = account.clients("s3")
    # what an earlier release left: same version number, other content
    s3.put_object(Bucket="spikes-test", Key=f"neurocaas/agent/neurocaas_agent-{agent.VERSION}.pyz", Body=b"old")
    s3.delete_object(Bucket="spikes-test", Key=agent.artifact_key())

    account.deploy(account.blueprint())

    assert agent.SHA256[:16] in agent.artifact_key()
    body = s3.get_object(Bucket="spikes-test", Key=agent.artifact_key())["Body"].read()
    assert hashlib.sha256(body).hexdigest() == agent.SHA256
