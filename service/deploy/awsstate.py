"""Reading what exists now: the AWS account's shared resources and one analysis's resources.

Only Get, List, Head and Describe calls are made here; the planners compare what this returns
with what should be. Retries come from botocore's standard retry mode.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)

from chalicelib import awslimits
from chalicelib.analysiscard import CARD_KEY
from service.deploy import naming
from service.deploy.exceptions import DeployError

RETRIES = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=5, read_timeout=60)
NOT_FOUND = ("NoSuchEntity", "NotFound", "404", "NoSuchKey", "NoSuchBucket", "ParameterNotFound",
             "InvalidGroup.NotFound", "InvalidKeyPair.NotFound", "NoSuchPublicAccessBlockConfiguration",
             "ServerSideEncryptionConfigurationNotFoundError", "OwnershipControlsNotFoundError",
             "InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable",
             "ResourceNotFoundException", "NoSuchLifecycleConfiguration")


def code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def aws_error(doing: str, error: Exception) -> DeployError:
    """An AWS failure as one actionable line."""
    if isinstance(error, NoCredentialsError):
        return DeployError("No AWS credentials found: configure a profile (`aws configure`) or set AWS_PROFILE.")
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {}).get("Message", "")
        return DeployError(f"AWS refused {doing} ({code(error)}: {detail}). Fix this and run the command again.")
    if isinstance(error, ParamValidationError):
        return DeployError(f"NeuroCAAS made a request the AWS SDK refuses while {doing} ({error}). This is a defect "
                           "in NeuroCAAS, not a network problem: please report it with this message.")
    return DeployError(f"Could not reach AWS while {doing} ({error}). Check your network and run the command again.")


class Clients:
    """boto3 clients for one account and region, made once each, with retries configured."""

    def __init__(self, session: boto3.Session, region: str) -> None:
        self.session, self.region = session, region
        self._clients: dict[str, Any] = {}
        self._account: str | None = None

    @classmethod
    def create(cls, region: str | None = None) -> Clients:
        try:
            session = boto3.Session(region_name=region) if region else boto3.Session()
        except BotoCoreError as error:  # e.g. AWS_PROFILE names no profile
            raise DeployError(f"Cannot use your AWS configuration ({error}): fix the profile and try again.") from error
        chosen = region or session.region_name
        if not chosen:
            raise DeployError("No AWS region chosen: pass --region or set AWS_DEFAULT_REGION.")
        problem = naming.region_problem(chosen)
        if problem:
            raise DeployError(problem)
        return cls(session, chosen)

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            try:
                self._clients[service] = self.session.client(service, region_name=self.region, config=RETRIES)
            except NoRegionError as error:
                raise DeployError("No AWS region chosen: pass --region or set AWS_DEFAULT_REGION.") from error
        return self._clients[service]

    @property
    def account(self) -> str:
        if self._account is None:
            try:
                self._account = str(self("sts").get_caller_identity()["Account"])
            except (ClientError, BotoCoreError) as error:
                raise aws_error("identifying your account", error) from error
        return self._account


def _get(doing: str, call: Any, **params: Any) -> dict[str, Any] | None:
    """A read that returns None when the thing does not exist."""
    try:
        return call(**params)  # type: ignore[no-any-return]
    except ClientError as error:
        if code(error) in NOT_FOUND:
            return None
        raise aws_error(doing, error) from error
    except BotoCoreError as error:
        raise aws_error(doing, error) from error


def _pages(doing: str, client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    try:
        return [item for page in client.get_paginator(operation).paginate(**params) for item in page.get(key, ())]
    except (ClientError, BotoCoreError) as error:
        raise aws_error(doing, error) from error


# --- the shared resources (neurocaas init) ------------------------------------------------------
@dataclass(frozen=True)
class SecurityGroup:
    group_id: str
    ingress: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class SharedState:
    """What exists of the resources every analysis shares."""

    account: str
    region: str
    vpc_id: str | None
    job_group: SecurityGroup | None = None
    dev_group: SecurityGroup | None = None
    key_exists: bool = False
    key_stored: bool = False
    key_ours: bool = False  # tagged by NeuroCAAS (made by an earlier init)


def _document(value: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: a dict, or URL-encoded JSON text."""
    if isinstance(value, str):
        from urllib.parse import unquote
        return json.loads(unquote(value))  # type: ignore[no-any-return]
    return value  # type: ignore[no-any-return]


def read_shared(clients: Clients) -> SharedState:
    ec2, ssm = clients("ec2"), clients("ssm")
    vpcs = _pages("listing VPCs", ec2, "describe_vpcs", "Vpcs", Filters=[{"Name": "is-default", "Values": ["true"]}])
    vpc_id = vpcs[0]["VpcId"] if vpcs else None
    groups: dict[str, SecurityGroup] = {}
    if vpc_id:
        found = _pages("listing security groups", ec2, "describe_security_groups", "SecurityGroups", Filters=[
            {"Name": "vpc-id", "Values": [vpc_id]},
            {"Name": "group-name", "Values": [naming.JOB_SECURITY_GROUP, naming.DEV_SECURITY_GROUP]}])
        groups = {g["GroupName"]: SecurityGroup(g["GroupId"], tuple(g.get("IpPermissions", ()))) for g in found}
    keys = _get("reading the key pair", ec2.describe_key_pairs, KeyNames=[naming.KEY_NAME])
    stored = _get("reading the key's parameter", ssm.get_parameter, Name=naming.KEY_PARAMETER)
    return SharedState(
        account=clients.account, region=clients.region, vpc_id=vpc_id,
        job_group=groups.get(naming.JOB_SECURITY_GROUP), dev_group=groups.get(naming.DEV_SECURITY_GROUP),
        key_exists=bool(keys and keys.get("KeyPairs")), key_stored=stored is not None,
        key_ours=any(naming.SHARED_TAG in k.get("Tags", []) for k in (keys or {}).get("KeyPairs", [])),
    )


def read_private_key(clients: Clients) -> str:
    """The developers' SSH private key, decrypted from SSM Parameter Store."""
    found = _get("reading the private key", clients("ssm").get_parameter, Name=naming.KEY_PARAMETER,
                 WithDecryption=True)
    if found is None:
        raise DeployError(f"No private key is stored in {naming.KEY_PARAMETER}: run `neurocaas init` first.")
    return str(found["Parameter"]["Value"])


# --- one analysis (neurocaas deploy | destroy | users) ------------------------------------------
@dataclass(frozen=True)
class BucketState:
    exists: bool
    owned: bool = True
    region: str | None = None
    public_access_blocked: bool = False
    encrypted: bool = False
    owner_enforced: bool = False
    folders: frozenset[str] = frozenset()
    card: bytes | None = None  # the analysis card (analysis.json) as deployed
    lifecycle_rules: tuple[dict[str, Any], ...] = ()  # the bucket's lifecycle configuration, as AWS returns it
    transition_minimum_size: str | None = None  # its TransitionDefaultMinimumObjectSize, when set


@dataclass(frozen=True)
class GroupState:
    name: str
    members: tuple[str, ...] = ()
    policies: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoleState:
    """The analysis's instance role and instance profile, as they are."""

    exists: bool = False
    trust: dict[str, Any] | None = None
    policies: dict[str, Any] = field(default_factory=dict)
    profile_roles: tuple[str, ...] | None = None  # None: no instance profile


@dataclass(frozen=True)
class AnalysisState:
    """What exists now of one analysis's resources in AWS."""

    account: str
    region: str
    bucket: BucketState
    groups: dict[str, GroupState]
    users: frozenset[str]
    budgets: dict[str, str]
    role: RoleState
    image_found: bool
    running: tuple[str, ...]
    memberships: dict[str, int] = field(default_factory=dict)  # IAM groups each existing user is in
    queue_found: bool = False
    concurrency_room: int | None = None  # what on_submit may reserve; None: Lambda did not say
    iam_summary: dict[str, int] = field(default_factory=dict)  # GetAccountSummary: Groups, GroupsQuota, ...
    legacy_policy: bool = False  # the shared role of an earlier NeuroCAAS still opens this bucket
    spot_role: bool = False  # the account's EC2 Spot service-linked role exists


def read_bucket(clients: Clients, bucket: str, markers: Iterable[str]) -> BucketState:
    s3 = clients("s3")
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if code(error) in ("404", "NoSuchBucket", "NotFound"):
            return BucketState(exists=False)
        if code(error) in ("403", "AccessDenied"):
            return BucketState(exists=True, owned=False)
        if code(error) != "301":
            raise aws_error(f"reading the bucket {bucket}", error) from error
    except BotoCoreError as error:
        raise aws_error(f"reading the bucket {bucket}", error) from error
    location = _get("reading the bucket's region", s3.get_bucket_location, Bucket=bucket) or {}
    block = (_get("reading the public access block", s3.get_public_access_block, Bucket=bucket) or {}).get(
        "PublicAccessBlockConfiguration", {})
    rules = (_get("reading the bucket's encryption", s3.get_bucket_encryption, Bucket=bucket) or {}).get(
        "ServerSideEncryptionConfiguration", {}).get("Rules", [])
    ownership = (_get("reading the bucket's ownership", s3.get_bucket_ownership_controls, Bucket=bucket) or {}).get(
        "OwnershipControls", {}).get("Rules", [])
    folders = frozenset(m for m in markers if _get(f"reading s3://{bucket}/{m}", s3.head_object, Bucket=bucket, Key=m))
    card = _get(f"reading s3://{bucket}/{CARD_KEY}", s3.get_object, Bucket=bucket, Key=CARD_KEY)
    lifecycle = _get("reading the bucket's lifecycle rules", s3.get_bucket_lifecycle_configuration,
                     Bucket=bucket) or {}
    return BucketState(
        exists=True, region=location.get("LocationConstraint") or "us-east-1",
        public_access_blocked=len(block) == 4 and all(block.values()),
        encrypted=any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules),
        owner_enforced=any(r.get("ObjectOwnership") == "BucketOwnerEnforced" for r in ownership),
        folders=folders, card=card["Body"].read() if card else None, lifecycle_rules=tuple(lifecycle.get("Rules", [])),
        transition_minimum_size=lifecycle.get("TransitionDefaultMinimumObjectSize"),
    )


def read_groups(clients: Clients, bucket: str) -> dict[str, GroupState]:
    """The analysis's IAM groups (those made under its path), with members and inline policies."""
    iam = clients("iam")
    found = {}
    for group in _pages("listing IAM groups", iam, "list_groups", "Groups", PathPrefix=naming.group_path(bucket)):
        name = group["GroupName"]
        members = _pages(f"reading IAM group {name}", iam, "get_group", "Users", GroupName=name)
        policies = {}
        for policy in _pages(f"reading IAM group {name}", iam, "list_group_policies", "PolicyNames", GroupName=name):
            document = _get(f"reading IAM group {name}", iam.get_group_policy, GroupName=name, PolicyName=policy)
            if document:
                policies[policy] = document["PolicyDocument"]
        found[name] = GroupState(name, tuple(sorted(u["UserName"] for u in members)), policies)
    return found


def existing_users(clients: Clients, names: Iterable[str]) -> frozenset[str]:
    iam = clients("iam")
    return frozenset(n for n in set(names) if _get(f"reading IAM user {n}", iam.get_user, UserName=n))


def read_budgets(clients: Clients, bucket: str) -> dict[str, str]:
    """The budget parameters of this analysis, whatever group they belong to."""
    parameters = _pages("listing budgets", clients("ssm"), "get_parameters_by_path", "Parameters",
                        Path="/neurocaas/budgets", Recursive=True)
    return {p["Name"]: p["Value"] for p in parameters if p["Name"].endswith(f"/{bucket}")}


def read_role(clients: Clients, bucket: str) -> RoleState:
    """The analysis's instance role, its inline policies and its instance profile."""
    iam, name = clients("iam"), naming.instance_role(bucket)
    role = _get("reading the instance role", iam.get_role, RoleName=name)
    policies = {}
    if role:
        for policy in _pages(f"reading the role {name}", iam, "list_role_policies", "PolicyNames", RoleName=name):
            found = _get(f"reading the role {name}", iam.get_role_policy, RoleName=name, PolicyName=policy)
            if found:
                policies[policy] = _document(found["PolicyDocument"])
    profile = _get("reading the instance profile", iam.get_instance_profile,
                   InstanceProfileName=naming.instance_profile(bucket))
    return RoleState(
        exists=role is not None, trust=_document(role["Role"].get("AssumeRolePolicyDocument")) if role else None,
        policies=policies,
        profile_roles=tuple(r["RoleName"] for r in profile["InstanceProfile"]["Roles"]) if profile else None)


def memberships(clients: Clients, users: Iterable[str]) -> dict[str, int]:
    """How many IAM groups each user is in (IAM allows 10)."""
    iam = clients("iam")
    return {u: len(_pages(f"reading the groups of IAM user {u}", iam, "list_groups_for_user", "Groups", UserName=u))
            for u in sorted(set(users))}


def concurrency_room(clients: Clients, function: str) -> int | None:
    """How much concurrency ``function`` may reserve and leave Lambda's minimum unreserved."""
    client = clients("lambda")
    settings = _get("reading Lambda's account settings", client.get_account_settings)
    if not settings:
        return None
    unreserved = int(settings["AccountLimit"]["UnreservedConcurrentExecutions"])
    current = _get(f"reading {function}'s concurrency", client.get_function_concurrency, FunctionName=function) or {}
    return unreserved + int(current.get("ReservedConcurrentExecutions", 0)) - awslimits.UNRESERVED_CONCURRENCY


def queue_exists(clients: Clients, name: str) -> bool:
    try:
        clients("sqs").get_queue_url(QueueName=name)
        return True
    except ClientError as error:
        if "NonExistentQueue" in code(error) or code(error) == "QueueDoesNotExist":
            return False
        raise aws_error(f"reading the queue {name}", error) from error
    except BotoCoreError as error:
        raise aws_error(f"reading the queue {name}", error) from error


def image_exists(clients: Clients, ami: str) -> bool:
    found = _get(f"reading the machine image {ami}", clients("ec2").describe_images, ImageIds=[ami])
    return bool(found and found.get("Images"))


def running_instances(clients: Clients, bucket: str) -> tuple[str, ...]:
    reservations = _pages("listing instances", clients("ec2"), "describe_instances", "Reservations", Filters=[
        {"Name": "tag:analysis", "Values": [bucket]},
        {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    return tuple(sorted(i["InstanceId"] for r in reservations for i in r["Instances"]))


def spot_role_exists(clients: Clients) -> bool:
    """Whether the account has EC2's Spot service-linked role (looked up by its path: see awslimits)."""
    return bool(_pages("listing the EC2 Spot service-linked role", clients("iam"), "list_roles", "Roles",
                       PathPrefix=awslimits.SPOT_SERVICE_ROLE_PATH))


def read_analysis(clients: Clients, bucket: str, markers: Sequence[str], users: Iterable[str],
                  ami: str | None) -> AnalysisState:
    """Everything deploy and destroy compare against, for one analysis."""
    found, stage = existing_users(clients, users), naming.stage_name(bucket)
    return AnalysisState(
        account=clients.account, region=clients.region, bucket=read_bucket(clients, bucket, markers),
        groups=read_groups(clients, bucket), users=found,
        budgets=read_budgets(clients, bucket), role=read_role(clients, bucket),
        image_found=image_exists(clients, ami) if ami else False, running=running_instances(clients, bucket),
        memberships=memberships(clients, found),
        queue_found=queue_exists(clients, naming.dead_letter_queue(stage)),
        concurrency_room=concurrency_room(clients, f"{naming.lambda_prefix(stage)}on_submit"),
        iam_summary=(_get("reading the account's IAM quotas", clients("iam").get_account_summary) or {}).get(
            "SummaryMap", {}),
        legacy_policy=_get("reading the shared instance role", clients("iam").get_role_policy,
                           RoleName=naming.LEGACY_INSTANCE_ROLE,
                           PolicyName=naming.legacy_instance_policy(bucket)) is not None,
        spot_role=spot_role_exists(clients),
    )
