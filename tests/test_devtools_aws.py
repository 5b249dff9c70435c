"""The AWS backend against moto: the calls it makes and the guards around them (moto's SSM runs nothing)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from chalicelib import agent, bootscript
from chalicelib.blueprint import load_blueprint
from devtools import DevToolsError, NeuroCAASAMI
from devtools.backends.aws import AwsBackend
from devtools.backends.scripts import LIFETIME_CHECK, run_commands
from devtools.exceptions import UnsavedWork
from devtools.images import CODES, UBUNTU24, resolve
from service.deploy.records import InitRecord, init_path, init_text
from tests.conftest import FIXTURES

BUCKET = "echo-analysis"


@pytest.fixture
def blueprint(aws_mock: None, tmp_path: Path) -> Path:
    """The echo blueprint in a git repository, its AMI one that exists in the (mocked) account."""
    repository = tmp_path / "repo"
    folder = repository / "echo"
    shutil.copytree(FIXTURES / "echo_analysis", folder)
    ami = boto3.client("ec2", region_name="us-east-1").register_image(
        Name="echo-v1", RootDeviceName="/dev/sda1", BlockDeviceMappings=[{"DeviceName": "/dev/sda1",
                                                                          "Ebs": {"VolumeSize": 8}}])["ImageId"]
    document = json.loads((folder / "stack_config_template.json").read_text())
    document["Lambda"]["LambdaConfig"]["AMI"] = ami
    (folder / "stack_config_template.json").write_text(json.dumps(document, indent=2) + "\n")
    for arguments in (["init", "-q"], ["config", "user.email", "d@example.org"], ["config", "user.name", "D"],
                      ["add", "."], ["commit", "-q", "-m", "echo"]):
        subprocess.run(["git", "-C", str(repository), *arguments], check=True, capture_output=True)
    return folder


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for variable in ("NEUROCAAS_DEV_KEY_NAME", "NEUROCAAS_DEV_SECURITY_GROUP", "NEUROCAAS_DEV_INSTANCE_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("NEUROCAAS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def account(aws_mock: None, home: Path) -> InitRecord:
    """What ``neurocaas init`` and ``deploy`` leave: a key pair, a development security group, the analysis's
    instance profile, the init record."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ec2.create_key_pair(KeyName="neurocaas-dev")
    group = ec2.create_security_group(GroupName="neurocaas-dev", Description="SSH to development instances")["GroupId"]
    boto3.client("iam").create_role(RoleName=f"neurocaas-{BUCKET}", AssumeRolePolicyDocument="{}")
    boto3.client("iam").create_instance_profile(InstanceProfileName=f"neurocaas-{BUCKET}")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
    account_id = boto3.client("sts").get_caller_identity()["Account"]
    record = InitRecord(account=account_id, region="us-east-1", vpc_id="vpc-1", job_security_group="sg-1",
                        dev_security_group=group, key_name="neurocaas-dev", key_parameter="/neurocaas/keys/neurocaas-dev")
    path = init_path(account_id, "us-east-1", home)
    path.parent.mkdir(parents=True)
    path.write_text(init_text(record))
    return record


@pytest.fixture
def dev(account: InitRecord, blueprint: Path, tmp_path: Path) -> NeuroCAASAMI:
    backend = AwsBackend("us-east-1", state_root=tmp_path / "state", wait_delay=1, wait_attempts=5)
    return NeuroCAASAMI(blueprint, backend=backend, say=lambda _: None)


def described(instance_id: str) -> dict:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def test_launch_uses_the_account_settings_and_ends_itself(dev: NeuroCAASAMI) -> None:
    instance = dev.launch_ami(volume_size=30, lifetime=45)

    item = described(instance.instance_id)
    assert item["ImageId"] == load_blueprint(dev.config_fullpath).settings.ami and item["KeyName"] == "neurocaas-dev"
    assert [g["GroupName"] for g in item["SecurityGroups"]] == ["neurocaas-dev"]
    # the profile of the blueprint being developed: its own bucket, no other analysis's
    assert item["IamInstanceProfile"]["Arn"].endswith(f"/neurocaas-{BUCKET}")
    assert item["MetadataOptions"]["InstanceMetadataTags"] == "enabled"
    assert item["MetadataOptions"]["HttpPutResponseHopLimit"] == 2  # containers on it get credentials too
    tags = {t["Key"]: t["Value"] for t in item["Tags"]}
    assert tags["neurocaas-dev"] == BUCKET and tags["Timeout"] == "45" and tags["PriceTracking"] == "On"
    assert "neurocaas-dev-since" in tags and "analysis" not in tags  # the job runner and reaper leave it alone
    ec2 = boto3.client("ec2", region_name="us-east-1")
    assert ec2.describe_instance_attribute(InstanceId=instance.instance_id, Attribute="instanceInitiatedShutdownBehavior"
                                           )["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    user_data = base64.b64decode(ec2.describe_instance_attribute(
        InstanceId=instance.instance_id, Attribute="userData")["UserData"]["Value"]).decode()
    assert base64.b64encode(LIFETIME_CHECK.encode()).decode() in user_data and "/etc/cron.d/" in user_data
    # The remote side is baked in as a job's boot script would fetch it (same shell, same checksum).
    assert agent.artifact_key() in user_data and agent.SHA256 in user_data and 'HOME=/home/ubuntu' in user_data
    assert subprocess.run(["bash", "-n"], input=user_data.encode(), capture_output=True).returncode == 0
    assert instance.address == item["PublicIpAddress"] and dev.ip == instance.address

    assert dev.get_lifetime().minutes == 45 and 44 < dev.get_lifetime().remaining_minutes <= 45
    assert dev.extend_lifetime(15).minutes == 60
    assert {t["Key"]: t["Value"] for t in described(instance.instance_id)["Tags"]}["Timeout"] == "60"
    assert dev.stop_devinstance().state == "stopped"
    assert dev.start_devinstance(lifetime=30).state == "running" and dev.get_lifetime().minutes == 30


def test_one_live_instance_and_no_unsaved_termination(dev: NeuroCAASAMI, blueprint: Path, tmp_path: Path) -> None:
    first = dev.launch_ami()
    with pytest.raises(DevToolsError, match="already has a development instance up"):
        dev.launch_ami()
    with pytest.raises(UnsavedWork):
        dev.terminate_devinstance()
    assert described(first.instance_id)["State"]["Name"] == "running"

    # A new session (a new Python process) finds the same instance in the state file.
    backend = AwsBackend("us-east-1", state_root=tmp_path / "state", wait_delay=1, wait_attempts=5)
    again = NeuroCAASAMI(blueprint, backend=backend, say=lambda _: None)
    assert again.instance is not None and again.instance.instance_id == first.instance_id

    ami = again.create_image("echo-v2")
    image = boto3.client("ec2", region_name="us-east-1").describe_images(ImageIds=[ami])["Images"][0]
    assert image["Name"] == "echo-v2" and {"Key": "neurocaas-dev", "Value": BUCKET} in image.get("Tags", [])
    update = again.update_blueprint(message="v2")
    assert load_blueprint(blueprint).settings.ami == ami and update.old_ami != ami
    log = subprocess.run(["git", "-C", str(blueprint), "log", "--format=%s", "-3"], check=True, capture_output=True,
                         text=True).stdout
    assert log.splitlines() == [f"echo: AMI {update.old_ami} -> {ami}", f"echo: blueprint before updating the AMI to {ami}",
                                "echo"]
    with pytest.raises(DevToolsError, match="already uses"):
        again.update_blueprint(ami)
    again.terminate_devinstance()
    assert described(first.instance_id)["State"]["Name"] == "terminated" and again.instance is None


def test_submit_sends_the_planned_boot_script_through_run_command(dev: NeuroCAASAMI, tmp_path: Path) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.put_object(Bucket=BUCKET, Key="lab/inputs/a b.bin", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="lab/configs/c.json", Body=b'{"mode": "ok", "__duration__": 20}')
    submit = tmp_path / "submit.json"
    submit.write_text(json.dumps({"dataname": ["lab/inputs/a b.bin"], "configname": "lab/configs/c.json",
                                  "timestamp": "aws1"}))
    with pytest.raises(DevToolsError, match="no development instance"):
        dev.submit_job_log(submit)
    instance = dev.launch_ami()

    job = dev.submit_job_log(submit)

    handle = job.runs[0].handle
    command = boto3.client("ssm", region_name="us-east-1").list_commands(CommandId=handle["command_id"])["Commands"][0]
    assert command["DocumentName"] == "AWS-RunShellScript" and command["InstanceIds"] == [instance.instance_id]
    assert command["OutputS3BucketName"] == BUCKET
    assert command["OutputS3KeyPrefix"] == "lab/results/job__echo-analysis_aws1/internal_ec2_logs/ssm"
    assert command["Parameters"]["executionTimeout"] == ["1200"]
    lines = command["Parameters"]["commands"]
    packed = next(line for line in lines if "user-data.sh" in line and "base64 -d" in line).split()[2]
    user_data = base64.b64decode(packed).decode()
    assert bootscript.unpack_rows(user_data) == [("lab/inputs/a b.bin", "lab/configs/c.json")]
    assert any("setsid --wait bash" in line and "NEUROCAAS_LAUNCH_INDEX=0" in line for line in lines)
    certificate = s3.get_object(Bucket=BUCKET, Key=f"{job.prefix}/logs/certificate.txt")["Body"].read().decode()
    assert "development instance" in certificate and "DATANAME: lab/inputs/a b.bin | STATUS: INITIALIZING" in certificate

    # moto's Run Command "succeeds" without running anything: the dataset never reported, so it is failed.
    report = dev.job_status()
    assert report.commands == {"a b.bin": "Success"} and report.status == "FAILED" and report.done
    status = json.loads(s3.get_object(Bucket=BUCKET, Key=job.runs[0].status_key)["Body"].read())
    assert status["status"] == "FAILED" and "without reporting a result" in status["reason"]
    assert set(dev.job_output()["a b.bin"]) == {"stdout", "stderr"}
    with pytest.raises(DevToolsError, match="There is no job 3"):
        dev.job_status(3)


def test_an_uninitialised_account_and_unknown_codes(aws_mock: None, home: Path, blueprint: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    backend = AwsBackend("us-east-1", state_root=tmp_path / "state")
    dev = NeuroCAASAMI(blueprint, backend=backend, say=lambda _: None)
    with pytest.raises(DevToolsError, match=r"not initialised .* run `neurocaas init --region us-east-1` .*"
                                            "NEUROCAAS_DEV_SECURITY_GROUP"):
        dev.launch_ami()
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ec2.create_key_pair(KeyName="my-key")
    ec2.create_security_group(GroupName="my-dev-group", Description="mine")
    monkeypatch.setenv("NEUROCAAS_DEV_KEY_NAME", "my-key")
    monkeypatch.setenv("NEUROCAAS_DEV_SECURITY_GROUP", "my-dev-group")
    with pytest.raises(DevToolsError, match="neither an AMI id"):
        dev.launch_ami("windows95")
    with pytest.raises(DevToolsError, match="AWS publishes no Ubuntu 22.04"):
        dev.launch_ami("ubuntu22")  # moto holds none of the public image parameters

    said: list[str] = []
    dev.say = said.append
    real = backend.read_parameter
    monkeypatch.setattr(backend, "read_parameter", lambda name: "ami-0123456789abcdef0" if name == UBUNTU24 else real(name))
    instance = dev.launch_ami("ubuntu18")
    assert instance.image_id == "ami-0123456789abcdef0" and described(instance.instance_id)["KeyName"] == "my-key"
    assert any("Ubuntu 18.04 is end-of-life" in line for line in said)


def test_every_code_is_documented_and_resolves() -> None:
    from devtools import images

    for code in ("ubuntu18", "ubuntu16", "dlami18", "dlami16", "ubuntu22", "ubuntu24", "dlami22", "dlami24"):
        assert code in CODES and code in images.__doc__
        found = resolve(code, lambda name: f"ami-{abs(hash(name)) % 10**8:08d}", "us-east-1")
        assert found.ami.startswith("ami-") and bool(found.note) == code.endswith(("16", "18"))
    assert resolve("ami-0abc1234", lambda _: None, "us-east-1").ami == "ami-0abc1234"
    assert all("power" not in line for line in run_commands("#!/bin/bash\n", 0, "job__x_1-0-0")[:2])
