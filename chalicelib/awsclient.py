"""A small typed facade over the S3, EC2 and SSM calls the job manager makes.

Retries come from botocore's retry configuration. AWS errors leave this module as
:class:`AWSFailure` with a message a user can act on, or as one of the two narrow exceptions
below that callers handle as part of normal control flow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import time
from datetime import datetime, timezone
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from chalicelib import awslimits
from chalicelib.awslimits import CONDITIONAL_CONFLICT_CODES
from chalicelib.exceptions import AWSFailure
from chalicelib.paths import ObjectRef
from chalicelib.plan import RootVolume

# The largest of the handlers' thread pools (the reconciler reads a 1000-dataset job's files 32 at a
# time); botocore keeps 10 connections by default, so the pool matches it or requests queue for one.
PARALLELISM = 32
RETRIES = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=5, read_timeout=30,
                 max_pool_connections=PARALLELISM)
LIVE_STATES = ("pending", "running", "stopping", "stopped")

ADVICE = {
    "InsufficientInstanceCapacity": "AWS has no capacity for this instance type in the region right now. "
    "Try again later, or submit with another allowed instance_type.",
    "VcpuLimitExceeded": "The account's vCPU quota for this instance type is reached. Try again when running "
    "jobs have finished, or ask the analysis developer to raise the quota.",
    "InstanceLimitExceeded": "The account's instance quota is reached. Try again when running jobs have finished.",
    "RequestLimitExceeded": "AWS is throttling requests. Submit again in a few minutes.",
    "Throttling": "AWS is throttling requests. Submit again in a few minutes.",
    "SlowDown": "S3 is throttling requests. Submit again in a few minutes.",
    "UnauthorizedOperation": "The job manager is not permitted to do this. Contact the analysis developer.",
    "AccessDenied": "The job manager is not permitted to do this. Contact the analysis developer.",
    "InvalidAMIID.NotFound": "The analysis's machine image does not exist in this region. Contact the analysis developer.",
    "InvalidAMIID.Malformed": "The analysis's machine image id is malformed. Contact the analysis developer.",
    "MaxSpotInstanceCountExceeded": "The account's Spot instance quota is reached. Try again when running jobs "
    "have finished, or ask the analysis developer to allow on-demand capacity (SPOT: prefer).",
    "SpotMaxPriceTooLow": "AWS has no Spot capacity at an acceptable price right now. Try again later, or ask "
    "the analysis developer to allow on-demand capacity (SPOT: prefer).",
}
SPOT_PRICE_TTL = 3600.0  # seconds a warm Lambda keeps a Spot price it read


# Launch refusals caused by something the blueprint names that the account lacks: the blueprint key,
# what it is, and how to read the named value from the RunInstances request.
MISSING_FOR_LAUNCH: dict[str, tuple[str, str, Callable[[Mapping[str, Any]], str]]] = {
    "NoSuchEntity": ("IAM_ROLE", "instance profile", lambda r: str(r.get("IamInstanceProfile", {}).get("Name", ""))),
    "InvalidKeyPair.NotFound": ("KEY_NAME", "key pair", lambda r: str(r.get("KeyName", ""))),
    "InvalidGroup.NotFound": ("SECURITY_GROUPS", "security group",
                              lambda r: ", ".join([*r.get("SecurityGroupIds", ()), *r.get("SecurityGroups", ())])),
    "InvalidAMIID.NotFound": ("AMI", "machine image", lambda r: str(r.get("ImageId", ""))),
    "InvalidAMIID.Unavailable": ("AMI", "machine image", lambda r: str(r.get("ImageId", ""))),
}
MISSING_FOR_LAUNCH["InvalidGroupId.NotFound"] = MISSING_FOR_LAUNCH["InvalidGroup.NotFound"]


def launch_failure(error: ClientError, request: Mapping[str, Any]) -> AWSFailure:
    """A refused launch, naming what the blueprint references and the account lacks."""
    code = _code(error)
    message = str(error.response.get("Error", {}).get("Message", ""))
    if code == "InvalidParameterValue" and "iamInstanceProfile" in message:
        code = "NoSuchEntity"  # how AWS reports an unknown instance profile name
    if code not in MISSING_FOR_LAUNCH:
        return _failure("starting instances", error)
    key, what, named = MISSING_FOR_LAUNCH[code]
    return AWSFailure(
        f"The analysis's blueprint names the {what} {named(request)!r} ({key}), which this AWS account does "
        f"not have in this region, so no instance could start. Contact the analysis developer: they must "
        f"create it or correct {key} in the blueprint and deploy again. (AWS: {code})", code=code)


PROFILE_MEMORY_SECONDS = 600.0


def _profile_not_seen_yet(error: ClientError) -> bool:
    message = str(error.response.get("Error", {}).get("Message", ""))
    return _code(error) == "InvalidParameterValue" and "iamInstanceProfile" in message


class ObjectMissing(Exception):
    """The S3 object does not exist."""


class PreconditionFailed(Exception):
    """A conditional S3 write lost: the object exists (If-None-Match) or changed (If-Match)."""


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    etag: str


@dataclass(frozen=True)
class ListedObject:
    key: str
    etag: str
    last_modified: datetime | None = None


@dataclass(frozen=True)
class LaunchedInstance:
    instance_id: str
    launch_index: int


@dataclass(frozen=True)
class InstanceInfo:
    instance_id: str
    state: str
    tags: dict[str, str]
    instance_type: str
    launch_index: int
    launch_time: datetime | None = None
    spot: bool = False


def _instance_info(item: dict[str, Any]) -> InstanceInfo:
    return InstanceInfo(
        instance_id=item["InstanceId"], state=item["State"]["Name"],
        tags={t["Key"]: t["Value"] for t in item.get("Tags", ())},
        instance_type=item.get("InstanceType", ""), launch_index=int(item.get("AmiLaunchIndex", 0)),
        launch_time=item.get("LaunchTime"), spot=item.get("InstanceLifecycle") == "spot",
    )


def _failure(operation: str, error: Exception) -> AWSFailure:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "Unknown")
        advice = ADVICE.get(code, "Submit again; if it keeps failing, contact the analysis developer.")
        return AWSFailure(f"AWS refused {operation} ({code}). {advice}", code=code)
    if isinstance(error, ParamValidationError):
        return AWSFailure(f"The job manager made a request the AWS SDK refuses for {operation} ({error}): a defect "
                          "in NeuroCAAS. Contact the analysis developer.", code="ParamValidation")
    return AWSFailure(f"Could not reach AWS for {operation}. Submit again in a few minutes.", code="Connection")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class AWSClient:
    """The AWS operations of the job manager, one method per thing it needs."""

    def __init__(self, s3: Any, ec2: Any, ssm: Any, quotas: Any = None, spot_history: bool = True) -> None:
        self.s3, self.ec2, self.ssm, self.quotas = s3, ec2, ssm, quotas
        # The local stack turns the Spot price history off: moto answers a placeholder price.
        self.spot_history = spot_history
        self._spot_prices: dict[str, tuple[float, float | None]] = {}
        self.sleep: Callable[[float], None] = time.sleep
        self._profiles_not_seen: dict[str, float] = {}  # instance profile -> when a whole wait failed

    @classmethod
    def create(cls, region: str | None = None, session: boto3.Session | None = None) -> "AWSClient":
        session = session or boto3.Session()
        make = lambda name: session.client(name, region_name=region, config=RETRIES)  # noqa: E731
        return cls(make("s3"), make("ec2"), make("ssm"), make("service-quotas"))

    # --- S3 -----------------------------------------------------------------------------------
    def get_object(self, ref: ObjectRef) -> StoredObject:
        try:
            response = self.s3.get_object(Bucket=ref.bucket, Key=ref.key)
            return StoredObject(response["Body"].read(), response["ETag"])
        except ClientError as error:
            if _code(error) in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                raise ObjectMissing(ref.uri) from error
            raise _failure(f"reading {ref.uri}", error) from error
        except BotoCoreError as error:
            raise _failure(f"reading {ref.uri}", error) from error

    def exists(self, ref: ObjectRef) -> bool:
        """Whether an object exists, or for a folder key whether anything lies under it."""
        try:
            if ref.is_folder:
                listing = self.s3.list_objects_v2(Bucket=ref.bucket, Prefix=ref.key, MaxKeys=1)
                return listing.get("KeyCount", 0) > 0
            self.s3.head_object(Bucket=ref.bucket, Key=ref.key)
            return True
        except ClientError as error:
            if _code(error) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return False
            raise _failure(f"checking {ref.uri}", error) from error
        except BotoCoreError as error:
            raise _failure(f"checking {ref.uri}", error) from error

    def put(self, bucket: str, key: str, body: bytes, content_type: str = "text/plain",
            if_none_match: bool = False, if_match: str | None = None) -> str:
        """Write an object; with a condition, :class:`PreconditionFailed` when it does not hold."""
        extra: dict[str, str] = {}
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        if if_match:
            extra["IfMatch"] = if_match
        try:
            return str(self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **extra)["ETag"])
        except ClientError as error:
            if _code(error) in (*CONDITIONAL_CONFLICT_CODES, "412", "409"):
                raise PreconditionFailed(f"s3://{bucket}/{key}") from error
            raise _failure(f"writing s3://{bucket}/{key}", error) from error
        except BotoCoreError as error:
            raise _failure(f"writing s3://{bucket}/{key}", error) from error

    def list_objects(self, bucket: str, prefix: str, delimiter: str = "") -> tuple[list[ListedObject], list[str]]:
        """Every object under ``prefix`` (one request per 1000 keys), and the common prefixes when
        ``delimiter`` is given. Listings are strongly consistent in S3."""
        extra = {"Delimiter": delimiter} if delimiter else {}
        objects: list[ListedObject] = []
        folders: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **extra):
                objects += [ListedObject(o["Key"], o.get("ETag", ""), o.get("LastModified"))
                            for o in page.get("Contents", ())]
                folders += [p["Prefix"] for p in page.get("CommonPrefixes", ())]
        except ClientError as error:
            if _code(error) == "NoSuchBucket":
                return [], []
            raise _failure(f"listing s3://{bucket}/{prefix}", error) from error
        except BotoCoreError as error:
            raise _failure(f"listing s3://{bucket}/{prefix}", error) from error
        return objects, folders

    def list_page(self, bucket: str, prefix: str, start_after: str, max_keys: int) -> list[str]:
        """One page of keys under ``prefix`` after ``start_after``, in order (one request)."""
        try:
            page = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, StartAfter=start_after, MaxKeys=max_keys)
        except (ClientError, BotoCoreError) as error:
            raise _failure(f"listing s3://{bucket}/{prefix}", error) from error
        return [o["Key"] for o in page.get("Contents", ())]

    def delete(self, bucket: str, key: str) -> None:
        try:
            self.s3.delete_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as error:
            raise _failure(f"deleting s3://{bucket}/{key}", error) from error

    # --- EC2 ----------------------------------------------------------------------------------
    def run_instances(self, request: Mapping[str, Any]) -> list[LaunchedInstance]:
        """Launch; an instance profile EC2 does not see yet is waited for (IAM is eventually
        consistent: a profile deploy has just made is refused for a few seconds). The request's
        client token makes the repeats one launch."""
        profile = str((request.get("IamInstanceProfile") or {}).get("Name", ""))
        # A profile that stayed invisible through a whole wait is not waited for again for a while:
        # a truly missing one must not cost every launch of a reaper pass 14 s.
        refused_at = self._profiles_not_seen.get(profile)
        waits = () if refused_at is not None and time.monotonic() - refused_at < PROFILE_MEMORY_SECONDS \
            else awslimits.NEW_INSTANCE_PROFILE_WAITS
        for pause in (*waits, None):
            try:
                response = self.ec2.run_instances(**request)
                break
            except ClientError as error:
                if profile and _profile_not_seen_yet(error):
                    if pause is not None:
                        self.sleep(pause)
                        continue
                    self._profiles_not_seen[profile] = time.monotonic()
                raise launch_failure(error, request) from error
            except BotoCoreError as error:
                raise _failure("starting instances", error) from error
        return [LaunchedInstance(i["InstanceId"], int(i.get("AmiLaunchIndex", 0))) for i in response["Instances"]]

    def terminate(self, instance_ids: Sequence[str]) -> None:
        if not instance_ids:
            return
        try:
            self.ec2.terminate_instances(InstanceIds=list(instance_ids))
        except (ClientError, BotoCoreError) as error:
            raise _failure("stopping instances", error) from error

    def find_instances(self, tags: Mapping[str, str], states: Sequence[str] = LIVE_STATES) -> list[InstanceInfo]:
        filters = [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]
        filters.append({"Name": "instance-state-name", "Values": list(states)})
        found = []
        try:
            for page in self.ec2.get_paginator("describe_instances").paginate(Filters=filters):
                for reservation in page["Reservations"]:
                    found.extend(_instance_info(i) for i in reservation["Instances"])
        except (ClientError, BotoCoreError) as error:
            raise _failure("listing instances", error) from error
        return found

    def describe(self, instance_id: str) -> InstanceInfo | None:
        """One instance as EC2 sees it now, or None if EC2 no longer knows it."""
        try:
            reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as error:
            if _code(error).startswith("InvalidInstanceID"):
                return None
            raise _failure("reading an instance", error) from error
        except BotoCoreError as error:
            raise _failure("reading an instance", error) from error
        items = [i for r in reservations for i in r["Instances"]]
        return _instance_info(items[0]) if items else None

    def spot_price(self, instance_type: str) -> float | None:
        """The current Spot price of ``instance_type`` (Linux; the highest of the region's zones, as
        the instance may land in any), or None when the history does not answer."""
        if not self.spot_history:
            return None
        cached = self._spot_prices.get(instance_type)
        if cached is not None and time.monotonic() - cached[0] < SPOT_PRICE_TTL:
            return cached[1]
        try:
            history = self.ec2.describe_spot_price_history(
                InstanceTypes=[instance_type], ProductDescriptions=["Linux/UNIX"],
                StartTime=datetime.now(timezone.utc), MaxResults=100)["SpotPriceHistory"]
            prices = [float(entry["SpotPrice"]) for entry in history if entry.get("InstanceType") == instance_type]
        except (ClientError, BotoCoreError, KeyError, ValueError):
            prices = []
        price = max(prices) if prices else None
        self._spot_prices[instance_type] = (time.monotonic(), price)
        return price

    def image_root(self, ami: str) -> RootVolume | None:
        try:
            images = self.ec2.describe_images(ImageIds=[ami])["Images"]
        except ClientError as error:
            if _code(error) == "InvalidAMIID.NotFound":
                return None  # a default root disk is planned; the launch itself reports a missing image
            raise _failure(f"reading machine image {ami}", error) from error
        except BotoCoreError as error:
            raise _failure(f"reading machine image {ami}", error) from error
        if not images:
            return None
        image = images[0]
        device = image.get("RootDeviceName", "/dev/sda1")
        for mapping in image.get("BlockDeviceMappings", ()):
            if mapping.get("DeviceName") == device and "Ebs" in mapping:
                return RootVolume(device, int(mapping["Ebs"].get("VolumeSize", 8)))
        return RootVolume(device, 8)

    def default_subnets(self) -> list[str]:
        """The account's default subnets (one per Availability Zone), for launching elsewhere."""
        try:
            subnets = self.ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        except (ClientError, BotoCoreError) as error:
            raise _failure("listing subnets", error) from error
        return [s["SubnetId"] for s in sorted(subnets, key=lambda s: s.get("AvailabilityZone", ""))]

    def vcpus(self, instance_types: Sequence[str]) -> dict[str, int]:
        """vCPUs of each instance type (types EC2 does not know are left out)."""
        if not instance_types:
            return {}
        try:
            found = self.ec2.describe_instance_types(InstanceTypes=sorted(set(instance_types)))["InstanceTypes"]
        except (ClientError, BotoCoreError) as error:
            raise _failure("reading instance types", error) from error
        return {t["InstanceType"]: int(t["VCpuInfo"]["DefaultVCpus"]) for t in found}

    def vcpu_quota(self, quota_code: str) -> float | None:
        """The account's vCPU quota, or None when it cannot be read (no permission, no service)."""
        if self.quotas is None:
            return None
        try:
            return float(self.quotas.get_service_quota(ServiceCode="ec2", QuotaCode=quota_code)["Quota"]["Value"])
        except (ClientError, BotoCoreError, KeyError):
            return None

    # --- SSM ----------------------------------------------------------------------------------
    def get_parameter(self, name: str) -> str | None:
        try:
            return str(self.ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except ClientError as error:
            if _code(error) == "ParameterNotFound":
                return None
            raise _failure(f"reading the budget parameter {name}", error) from error
        except BotoCoreError as error:
            raise _failure(f"reading the budget parameter {name}", error) from error
