"""A job plan: everything the executor will do for one submission, decided up front.

Plans are values: they can be printed, compared and tested without AWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chalicelib import awslimits
from chalicelib.paths import ObjectRef
from chalicelib.submission import Submission


@dataclass(frozen=True)
class RootVolume:
    """The root disk of the image, as the instance will get it."""

    device_name: str
    size_gb: int


@dataclass(frozen=True)
class InputFacts:
    """What the planner needs to know from S3 and EC2, gathered before planning."""

    existing: frozenset[ObjectRef]
    config_body: bytes | None
    image_root: RootVolume | None = None
    parameter_schema: dict[str, Any] | None = None  # the analysis's declared parameters, if any


@dataclass(frozen=True)
class BudgetState:
    """The group's spending and the analysis's load, as of now (CONTRACT section 8)."""

    limit: float | None
    limit_source: str
    spent: float = 0.0
    running_cost: float = 0.0
    running_instances: int = 0
    vcpus: VcpuHeadroom | None = None


@dataclass(frozen=True)
class VcpuHeadroom:
    """The account's on-demand vCPU quota for an instance family, and what is in use."""

    quota: float
    in_use: int
    per_instance: int


@dataclass(frozen=True)
class DatasetPlan:
    """One instance's work: which input and config, and where its status is written."""

    label: str
    input: ObjectRef
    config: ObjectRef
    status_key: str
    batch: int
    launch_index: int
    member: int | None = None
    config_body: bytes | None = None

    def certificate_name(self, home_bucket: str) -> str:
        """How the certificate names this dataset (the remote side finds its line by it)."""
        name = self.input.argument(home_bucket)
        return f"{name} [member {self.member}]" if self.member is not None else name


@dataclass(frozen=True)
class LaunchBatch:
    """One ``RunInstances`` request: ``count`` instances sharing one boot script."""

    number: int
    instance_type: str
    count: int
    user_data: str
    client_token: str
    subnet: str = ""  # empty: EC2 picks the default subnet (and so the Availability Zone)


@dataclass(frozen=True)
class JobPlan:
    submission: Submission
    submit_etag: str
    analysis: str
    ami: str
    instance_type: str
    lifetime_minutes: int
    datasets: tuple[DatasetPlan, ...]
    batches: tuple[LaunchBatch, ...]
    tags: dict[str, str]
    estimated_cost: float
    iam_role: str = ""
    key_name: str = ""
    security_groups: tuple[str, ...] = ()
    root_volume: RootVolume | None = None
    notes: tuple[str, ...] = field(default=())
    fallback_instance_types: tuple[str, ...] = ()
    spot: str = "never"
    on_demand_cost: float | None = None  # the estimate on-demand, when the job is estimated at Spot prices

    @property
    def launch_spec(self) -> LaunchSpec:
        return LaunchSpec(self.ami, self.tags, self.iam_role, self.key_name, self.security_groups, self.root_volume)

    @property
    def job_id(self) -> str:
        return self.submission.job_id

    def describe(self) -> str:
        """A readable summary of the plan, as printed by ``neurocaas`` and devtools."""
        s = self.submission
        lines = [
            f"Job {s.job_id} of {self.analysis} for group {s.group}",
            f"  job folder:     s3://{s.location.bucket}/{s.location.prefix}/",
            f"  image:          {self.ami} on {self.instance_type}, lifetime {self.lifetime_minutes} min",
            f"  estimated cost: ${self.estimated_cost:.2f}",
        ]
        if self.root_volume:
            lines.append(f"  root volume:    {self.root_volume.size_gb} GB on {self.root_volume.device_name}")
        lines.append(f"  launches:       {len(self.batches)} request(s) for {len(self.datasets)} instance(s)")
        for d in self.datasets:
            lines.append(f"    - {d.label}: {d.input.uri} with {d.config.uri}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True)
class LaunchSpec:
    """What every instance of a job shares in its ``RunInstances`` request."""

    ami: str
    tags: dict[str, str]
    iam_role: str = ""
    key_name: str = ""
    security_groups: tuple[str, ...] = ()
    root_volume: RootVolume | None = None


SPOT_MARKET = {"MarketType": "spot",
               "SpotOptions": {"SpotInstanceType": "one-time", "InstanceInterruptionBehavior": "terminate"}}


def run_instances_request(plan: JobPlan, batch: LaunchBatch, spot: bool = False) -> dict[str, object]:
    """The ``RunInstances`` parameters for one batch of the plan."""
    return launch_request(plan.launch_spec, batch, spot)


def launch_request(spec: LaunchSpec, batch: LaunchBatch, spot: bool = False) -> dict[str, object]:
    """The ``RunInstances`` parameters for one batch: all-or-nothing, tagged, self-terminating;
    with ``spot``, one-time Spot capacity at the current Spot price (no maximum price)."""
    tags = [{"Key": k, "Value": v} for k, v in {"neurocaas:batch": str(batch.number), **spec.tags}.items()]
    request: dict[str, object] = {
        "ImageId": spec.ami,
        "InstanceType": batch.instance_type,
        "MinCount": batch.count,
        "MaxCount": batch.count,
        "UserData": batch.user_data,
        "ClientToken": batch.client_token,
        "InstanceInitiatedShutdownBehavior": "terminate",
        # IMDSv2 only; two hops so analyses in containers on the instance get its credentials too.
        "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled",
                            "HttpPutResponseHopLimit": awslimits.METADATA_HOP_LIMIT},
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": tags},
            {"ResourceType": "volume", "Tags": tags},
        ],
    }
    if spot:
        request["InstanceMarketOptions"] = SPOT_MARKET
    if batch.subnet:
        request["SubnetId"] = batch.subnet
    if spec.iam_role:
        request["IamInstanceProfile"] = {"Name": spec.iam_role}
    if spec.key_name:
        request["KeyName"] = spec.key_name
    if spec.security_groups:
        ids = [g for g in spec.security_groups if g.startswith("sg-")]
        names = [g for g in spec.security_groups if not g.startswith("sg-")]
        if ids:
            request["SecurityGroupIds"] = ids
        if names:
            request["SecurityGroups"] = names
    if spec.root_volume:
        request["BlockDeviceMappings"] = [{
            "DeviceName": spec.root_volume.device_name,
            "Ebs": {"VolumeSize": spec.root_volume.size_gb, "VolumeType": "gp3", "DeleteOnTermination": True},
        }]
    return request
