"""The EC2 side of a development instance, shared by both backends: launch, read, start, stop, tags."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from devtools.backends import InstanceView, LaunchRequest
from devtools.exceptions import DevToolsError

DEV_TAG = "neurocaas-dev"
SINCE_TAG = "neurocaas-dev-since"
TIMEOUT_TAG = "Timeout"
LIVE = ("pending", "running")
T = TypeVar("T")


def aws_call(operation: str, call: Callable[[], T]) -> T:
    """Run one AWS call; its failure becomes one line naming the operation and AWS's reason."""
    try:
        return call()
    except ClientError as error:
        detail = error.response.get("Error", {})
        raise DevToolsError(f"AWS refused {operation} ({detail.get('Code', 'Unknown')}): "
                            f"{detail.get('Message', '').strip() or 'no reason given'}.") from error
    except BotoCoreError as error:
        raise unreachable(operation, error) from error


def unreachable(operation: str, error: BotoCoreError) -> DevToolsError:
    """A botocore failure: a request the SDK refuses is a defect of ours, anything else the network."""
    if isinstance(error, ParamValidationError):
        return DevToolsError(f"NeuroCAAS made a request the AWS SDK refuses for {operation} ({error}): a defect in "
                             "NeuroCAAS, not a connection problem; please report it.")
    return DevToolsError(f"Could not reach AWS for {operation} ({error}). Check your connection and try again.")


def now() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def lifetime_tags(minutes: float, since: datetime) -> list[dict[str, str]]:
    return [{"Key": TIMEOUT_TAG, "Value": f"{minutes:g}"}, {"Key": SINCE_TAG, "Value": stamp(since)}]


def launch_tags(request: LaunchRequest) -> list[dict[str, Any]]:
    """Tags of a development instance and its disk: what it is for and how long it may live."""
    name = request.blueprint.name
    tags = [{"Key": "Name", "Value": f"neurocaas-dev-{name}"}, {"Key": DEV_TAG, "Value": name},
            {"Key": "PriceTracking", "Value": "On"}, *lifetime_tags(request.lifetime_minutes, now())]
    return [{"ResourceType": "instance", "Tags": tags}, {"ResourceType": "volume", "Tags": tags}]


def _since(tags: dict[str, str], launch_time: datetime | None) -> datetime | None:
    try:
        return datetime.strptime(tags[SINCE_TAG], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (KeyError, ValueError):
        return launch_time


def view(item: dict[str, Any], address: str | None = None) -> InstanceView:
    tags = {t["Key"]: t["Value"] for t in item.get("Tags", ())}
    try:
        timeout: float | None = float(tags[TIMEOUT_TAG])
    except (KeyError, ValueError):
        timeout = None
    found = item.get("PublicIpAddress") or item.get("PublicDnsName") or item.get("PrivateIpAddress") or ""
    return InstanceView(
        instance_id=item["InstanceId"], state=item["State"]["Name"], address=address if address is not None else found,
        image_id=item.get("ImageId", ""), instance_type=item.get("InstanceType", ""), timeout_minutes=timeout,
        since=_since(tags, item.get("LaunchTime")), tags=tags,
    )


class DevEC2:
    """EC2 calls about development instances."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2

    def run(self, request: dict[str, Any]) -> dict[str, Any]:
        response = aws_call("starting the development instance", lambda: self.ec2.run_instances(**request))
        return dict(response["Instances"][0])

    def item(self, instance_id: str) -> dict[str, Any] | None:
        try:
            reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")).startswith("InvalidInstanceID"):
                return None
            raise DevToolsError(f"AWS refused reading instance {instance_id}: {error}.") from error
        except BotoCoreError as error:
            raise unreachable(f"reading instance {instance_id}", error) from error
        items = [i for r in reservations for i in r["Instances"]]
        return items[0] if items else None

    def live(self, blueprint: str) -> list[dict[str, Any]]:
        filters = [{"Name": f"tag:{DEV_TAG}", "Values": [blueprint]},
                   {"Name": "instance-state-name", "Values": list(LIVE)}]
        pages = aws_call("listing development instances", lambda: list(
            self.ec2.get_paginator("describe_instances").paginate(Filters=filters)))
        return [i for p in pages for r in p["Reservations"] for i in r["Instances"]]

    def start(self, instance_id: str, lifetime_minutes: float) -> None:
        self.set_lifetime(instance_id, lifetime_minutes, since=now())
        aws_call("starting the instance", lambda: self.ec2.start_instances(InstanceIds=[instance_id]))

    def stop(self, instance_id: str) -> None:
        aws_call("stopping the instance", lambda: self.ec2.stop_instances(InstanceIds=[instance_id]))

    def terminate(self, instance_id: str) -> None:
        aws_call("terminating the instance", lambda: self.ec2.terminate_instances(InstanceIds=[instance_id]))

    def set_lifetime(self, instance_id: str, minutes: float, since: datetime | None = None) -> None:
        tags = lifetime_tags(minutes, since) if since else [{"Key": TIMEOUT_TAG, "Value": f"{minutes:g}"}]
        aws_call("setting the instance's lifetime",
                 lambda: self.ec2.create_tags(Resources=[instance_id], Tags=tags))

    def image_state(self, ami: str) -> str | None:
        try:
            images = self.ec2.describe_images(ImageIds=[ami])["Images"]
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")).startswith("InvalidAMIID"):
                return None
            raise DevToolsError(f"AWS refused reading image {ami}: {error}.") from error
        return str(images[0].get("State", "available")) if images else None

    def wait(self, waiter: str, instance_id: str, delay: int, attempts: int) -> None:
        """Wait with botocore's own waiter (its polling is its retry policy)."""
        aws_call(f"waiting for the instance ({waiter.replace('_', ' ')})", lambda: self.ec2.get_waiter(waiter).wait(
            InstanceIds=[instance_id], WaiterConfig={"Delay": delay, "MaxAttempts": attempts}))
