"""What the local runner needs from the stack's EC2: discovery, user data, and true states.

moto marks an instance ``running`` as soon as it is described; the local stack knows better (an
instance waits for a free slot, then runs, then ends), so it sets the state in moto's in-process
backend, which it owns. Terminating goes through the EC2 API like any client.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID

ENDED = ("shutting-down", "terminated", "stopping", "stopped")
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}


@dataclass(frozen=True)
class Launched:
    """A launched instance the runner has to run."""

    instance_id: str
    image_id: str
    launch_index: int
    tags: dict[str, str]

    @property
    def lifetime_minutes(self) -> float:
        try:
            return float(self.tags.get("Timeout", "60"))
        except ValueError:
            return 60.0


class LocalEC2:
    """The runner's view of EC2 on the local stack."""

    def __init__(self, ec2: Any, region: str) -> None:
        self.ec2, self.region = ec2, region

    def launched(self, analyses: set[str]) -> list[Launched]:
        pages = self.ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": "instance-state-name", "Values": ["pending", "running"]},
            {"Name": "tag-key", "Values": ["analysis"]},
        ])
        found = []
        for page in pages:
            for reservation in page["Reservations"]:
                for item in reservation["Instances"]:
                    tags = {t["Key"]: t["Value"] for t in item.get("Tags", ())}
                    if tags.get("analysis") in analyses:
                        found.append(Launched(item["InstanceId"], item["ImageId"],
                                              int(item.get("AmiLaunchIndex", 0)), tags))
        return found

    def states(self, instance_ids: list[str]) -> dict[str, str]:
        if not instance_ids:
            return {}
        pages = self.ec2.get_paginator("describe_instances").paginate(InstanceIds=instance_ids)
        return {i["InstanceId"]: i["State"]["Name"] for p in pages for r in p["Reservations"] for i in r["Instances"]}

    def user_data(self, instance_id: str) -> str:
        value = self.ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        encoded = value.get("UserData", {}).get("Value", "")
        return base64.b64decode(encoded).decode() if encoded else ""

    def set_state(self, instance_id: str, name: str) -> bool:
        """Move an instance to ``pending`` or ``running``; False (and no change) once it is ending or ended,
        so an instance terminated while it waited for a slot never starts."""
        from moto.ec2.models import ec2_backends

        instance = ec2_backends[DEFAULT_ACCOUNT_ID][self.region].get_instance(instance_id)
        if instance._state.name in ENDED:
            return False
        instance._state.name, instance._state.code = name, STATE_CODES[name]
        return True

    def terminate(self, instance_id: str) -> None:
        self.ec2.terminate_instances(InstanceIds=[instance_id])
