"""AWS development instances: EC2 for the instance, SSM Run Command for jobs, their output in S3.

The instance uses the account's development key pair and security group that ``neurocaas init``
made (read from its record, ``$NEUROCAAS_HOME/aws/{account}-{region}/init.json``), and the instance
profile ``neurocaas deploy`` made for the blueprint being developed (its bucket, no other analysis's).
``NEUROCAAS_DEV_KEY_NAME`` and ``NEUROCAAS_DEV_SECURITY_GROUP`` (with, optionally,
``NEUROCAAS_DEV_INSTANCE_PROFILE``) name others instead. Run Command needs the instance profile's role
to allow the SSM agent (deploy gives the analysis's role the agent's actions).

Its shutdown behaviour is ``stop`` and a cron check installed by its user data stops it when its
lifetime (tags ``Timeout`` and ``neurocaas-dev-since``) has run out, so the work on its disk is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import awslimits
from chalicelib.awsclient import AWSClient
from chalicelib.blueprint import Blueprint
from devtools.backends import InstanceView, LaunchRequest, RunRequest
from devtools.backends.ec2 import DEV_TAG, DevEC2, aws_call, launch_tags, unreachable, view
from devtools.backends.scripts import run_commands, watchdog_user_data
from devtools.exceptions import DevToolsError
from devtools.images import ResolvedImage, resolve

ENVIRONMENT = ("NEUROCAAS_DEV_KEY_NAME", "NEUROCAAS_DEV_SECURITY_GROUP", "NEUROCAAS_DEV_INSTANCE_PROFILE")
COMMAND_STATES = {"Delayed": "Pending", "Cancelling": "InProgress"}
MAX_EXECUTION_SECONDS = 172800  # Run Command's longest execution timeout (48 hours)


@dataclass(frozen=True)
class DevAccount:
    """How development instances reach the account's network and permissions."""

    key_name: str
    security_group: str
    instance_profile: str = ""


def neurocaas_home() -> Path:
    return Path(os.environ.get("NEUROCAAS_HOME") or Path.home() / ".neurocaas")


class AwsBackend:
    """Development instances in an AWS account (or anything that speaks its API, such as moto)."""

    target = "aws"
    minute_seconds = 60.0

    def __init__(self, region: str, *, session: boto3.Session | None = None, account: DevAccount | None = None,
                 state_root: Path | None = None, wait_delay: int = 5, wait_attempts: int = 120) -> None:
        self.region, self.account_settings = region, account
        self.session = session or boto3.Session()
        self.clients = AWSClient.create(region=region, session=self.session)
        self.ec2 = DevEC2(self.clients.ec2)
        self.state_root = state_root or neurocaas_home() / "dev" / "aws"
        self.wait_delay, self.wait_attempts = wait_delay, wait_attempts

    def aws(self) -> AWSClient:
        return self.clients

    def read_parameter(self, name: str) -> str | None:
        try:
            return str(self.clients.ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
                return None
            raise DevToolsError(f"AWS refused reading SSM parameter {name}: {error}.") from error
        except BotoCoreError as error:
            raise unreachable(f"reading SSM parameter {name}", error) from error

    def account(self, blueprint: Blueprint) -> DevAccount:
        """The development key pair, security group and instance profile: named, else from ``neurocaas init``."""
        if self.account_settings is not None:
            return self.account_settings
        key, group, profile = (os.environ.get(v, "") for v in ENVIRONMENT)
        if key and group:
            return DevAccount(key, group, profile or blueprint.settings.iam_role)
        record = self._init_record()
        return DevAccount(record.key_name, record.dev_security_group, profile or self._analysis_profile(blueprint))

    @staticmethod
    def _analysis_profile(blueprint: Blueprint) -> str:
        """The instance profile ``neurocaas deploy`` made for this blueprint: its bucket and nothing else."""
        from service.deploy.naming import instance_profile
        return instance_profile(blueprint.name)

    def _init_record(self) -> Any:
        """What ``neurocaas init`` made in this account and region."""
        advice = (f"run `neurocaas init --region {self.region}`, or set NEUROCAAS_DEV_KEY_NAME and "
                  "NEUROCAAS_DEV_SECURITY_GROUP")
        try:
            from service.deploy.exceptions import DeployError
            from service.deploy.records import read_init
        except ImportError:  # pragma: no cover - the deploy tools ship with this package
            raise DevToolsError(f"No development key pair or security group is known: {advice}.") from None
        account = aws_call("reading the account id", lambda: self.session.client(
            "sts", region_name=self.region).get_caller_identity())["Account"]
        try:
            return read_init(str(account), self.region)
        except DeployError as error:
            raise DevToolsError(f"{error.message.rstrip('.')} (or set NEUROCAAS_DEV_KEY_NAME and "
                                "NEUROCAAS_DEV_SECURITY_GROUP).") from None

    def resolve_ami(self, ami: str | None, blueprint: Blueprint) -> ResolvedImage:
        if ami is None:
            return ResolvedImage(blueprint.settings.ami)
        return resolve(ami, self.read_parameter, self.region)

    def image_state(self, ami: str) -> str | None:
        return self.ec2.image_state(ami)

    def _root_device(self, ami: str) -> str:
        images = aws_call(f"reading image {ami}", lambda: self.clients.ec2.describe_images(ImageIds=[ami]))["Images"]
        return str(images[0].get("RootDeviceName", "/dev/sda1")) if images else "/dev/sda1"

    def launch(self, request: LaunchRequest) -> InstanceView:
        account = self.account(request.blueprint)
        group = "SecurityGroupIds" if account.security_group.startswith("sg-") else "SecurityGroups"
        params: dict[str, Any] = {
            "ImageId": request.ami, "InstanceType": request.instance_type, "MinCount": 1, "MaxCount": 1,
            "KeyName": account.key_name, group: [account.security_group], "UserData": watchdog_user_data(request.blueprint.name),
            "InstanceInitiatedShutdownBehavior": "stop", "TagSpecifications": launch_tags(request),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "InstanceMetadataTags": "enabled",
                                "HttpPutResponseHopLimit": awslimits.METADATA_HOP_LIMIT},
        }
        if account.instance_profile:
            params["IamInstanceProfile"] = {"Name": account.instance_profile}
        if request.volume_size:
            params["BlockDeviceMappings"] = [{"DeviceName": self._root_device(request.ami), "Ebs": {
                "VolumeSize": request.volume_size, "VolumeType": "gp3", "DeleteOnTermination": True}}]
        problems = awslimits.check_call("ec2", "run_instances", params)
        if problems:
            raise DevToolsError(f"AWS would refuse this launch: {'; '.join(problems)}.")
        instance_id = self.ec2.run(params)["InstanceId"]
        self.ec2.wait("instance_running", instance_id, self.wait_delay, self.wait_attempts)
        return self._described(instance_id)

    def describe(self, instance_id: str) -> InstanceView | None:
        item = self.ec2.item(instance_id)
        return view(item) if item else None

    def _described(self, instance_id: str) -> InstanceView:
        found = self.describe(instance_id)
        if found is None:
            raise DevToolsError(f"AWS no longer knows instance {instance_id}.")
        return found

    def live_instances(self, blueprint: str) -> list[InstanceView]:
        return [view(i) for i in self.ec2.live(blueprint)]

    def start(self, instance_id: str, lifetime_minutes: int) -> InstanceView:
        self.ec2.start(instance_id, lifetime_minutes)
        self.ec2.wait("instance_running", instance_id, self.wait_delay, self.wait_attempts)
        return self._described(instance_id)

    def stop(self, instance_id: str) -> InstanceView:
        self.ec2.stop(instance_id)
        return self._described(instance_id)

    def terminate(self, instance_id: str) -> None:
        self.ec2.terminate(instance_id)

    def set_lifetime(self, instance_id: str, minutes: float) -> None:
        self.ec2.set_lifetime(instance_id, minutes)

    def create_image(self, instance: InstanceView, name: str, blueprint: Blueprint) -> str:
        ami = str(aws_call("creating the image", lambda: self.clients.ec2.create_image(
            InstanceId=instance.instance_id, Name=name,
            Description=f"{blueprint.name}: saved from development instance {instance.instance_id}"[:255],
            TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": DEV_TAG, "Value": blueprint.name}]}],
        ))["ImageId"])
        return ami

    def write_back_image(self, blueprint: Blueprint, ami: str) -> list[Path]:
        return []  # an AMI lives in the account; the blueprint names it

    # --- commands -----------------------------------------------------------------------------
    def run(self, request: RunRequest) -> dict[str, str]:
        prefix = f"{request.prefix}/internal_ec2_logs/ssm"
        try:
            response = self.clients.ssm.send_command(
                InstanceIds=[request.instance.instance_id], DocumentName="AWS-RunShellScript",
                Comment=f"NeuroCAAS development run: {request.label}"[:100],
                Parameters={"commands": run_commands(request.user_data, request.launch_index, request.name),
                            "workingDirectory": ["/"],
                            "executionTimeout": [str(min(request.lifetime_minutes * 60, MAX_EXECUTION_SECONDS))]},
                OutputS3BucketName=request.bucket, OutputS3KeyPrefix=prefix)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "InvalidInstanceId":
                raise DevToolsError(f"SSM cannot reach {request.instance.instance_id} yet: wait a minute after it "
                                    "starts, and check its instance profile allows the SSM agent "
                                    "(AmazonSSMManagedInstanceCore).") from error
            raise DevToolsError(f"AWS refused sending the command (SSM Run Command): {error}.") from error
        except BotoCoreError as error:
            raise unreachable("sending the command", error) from error
        return {"command_id": response["Command"]["CommandId"], "instance_id": request.instance.instance_id,
                "bucket": request.bucket, "output_prefix": prefix}

    def _invocation(self, handle: dict[str, str]) -> dict[str, Any] | None:
        try:
            return dict(self.clients.ssm.get_command_invocation(CommandId=handle["command_id"],
                                                                InstanceId=handle["instance_id"]))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "InvocationDoesNotExist":
                return None
            raise DevToolsError(f"AWS refused reading command {handle['command_id']}: {error}.") from error

    def run_state(self, handle: dict[str, str]) -> str:
        invocation = self._invocation(handle)
        status = str(invocation.get("Status", "Pending")) if invocation else "Pending"
        return COMMAND_STATES.get(status, status)

    def run_output(self, handle: dict[str, str]) -> dict[str, str]:
        base = f"{handle['output_prefix']}/{handle['command_id']}/{handle['instance_id']}/awsrunShellScript/0.awsrunShellScript"
        output: dict[str, str] = {}
        for stream, field in (("stdout", "StandardOutputContent"), ("stderr", "StandardErrorContent")):
            try:
                body = self.clients.s3.get_object(Bucket=handle["bucket"], Key=f"{base}/{stream}")["Body"].read()
                output[stream] = body.decode(errors="replace")
            except ClientError:
                invocation = self._invocation(handle) or {}
                output[stream] = str(invocation.get(field, ""))
        return output
