"""What an initialised AWS account holds for an analysis, provisioned on the local stack.

A NeuroCAAS blueprint names an instance profile (``IAM_ROLE``, e.g. "SSMRole"), a key pair
(``KEY_NAME``), security groups (``SECURITY_GROUPS``) and a machine image (``AMI``) that its
developer created once in their account. The local stack creates each of them when it serves the
blueprint, so the blueprint launches unedited. Names go through the AWS APIs; the two things the
APIs cannot create with a chosen id (a security group ``sg-...`` and the image ``ami-...``) are
added to moto's in-process backend, which the local stack owns (as ``instances.py`` does).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError
from moto import settings as moto_settings
from moto.core import DEFAULT_ACCOUNT_ID

from chalicelib.blueprint import AnalysisSettings

EC2_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})


def _exists(call: Callable[[], Any], *missing_codes: str) -> bool:
    try:
        call()
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in missing_codes:
            return False
        raise


def provision(settings: AnalysisSettings, *, iam: Any, ec2: Any, region: str) -> list[str]:
    """Create what ``settings`` reference and is missing; returns one line per thing created."""
    created = []
    role = settings.iam_role
    if role and not _exists(lambda: iam.get_instance_profile(InstanceProfileName=role), "NoSuchEntity"):
        if not _exists(lambda: iam.get_role(RoleName=role), "NoSuchEntity"):
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=EC2_TRUST)
        iam.create_instance_profile(InstanceProfileName=role)
        iam.add_role_to_instance_profile(InstanceProfileName=role, RoleName=role)
        created.append(f"instance profile {role} (IAM_ROLE)")
    key = settings.key_name
    if key and not _exists(lambda: ec2.describe_key_pairs(KeyNames=[key]), "InvalidKeyPair.NotFound"):
        ec2.create_key_pair(KeyName=key)
        created.append(f"key pair {key} (KEY_NAME)")
    for group in settings.security_groups:
        if not _security_group_exists(ec2, group):
            _create_security_group(ec2, group, region)
            created.append(f"security group {group} (SECURITY_GROUPS)")
    if not _exists(lambda: ec2.describe_images(ImageIds=[settings.ami]), "InvalidAMIID.NotFound"):
        _register_image(settings.ami, settings.bucket_name, region)
        created.append(f"machine image {settings.ami} (AMI)")
    return created


def _security_group_exists(ec2: Any, group: str) -> bool:
    field = "group-id" if group.startswith("sg-") else "group-name"
    found = ec2.describe_security_groups(Filters=[{"Name": field, "Values": [group]}])["SecurityGroups"]
    return bool(found)


def _create_security_group(ec2: Any, group: str, region: str) -> None:
    if not group.startswith("sg-"):
        ec2.create_security_group(GroupName=group, Description="NeuroCAAS analysis instances (local stack)")
        return
    # An id cannot be chosen through the API: create the group, then give it the blueprint's id.
    from moto.ec2.models import ec2_backends

    made = ec2.create_security_group(GroupName=f"neurocaas-{group}", Description="NeuroCAAS analysis instances (local stack)")
    backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    for groups in backend.groups.values():
        if made["GroupId"] in groups:
            record = groups.pop(made["GroupId"])
            record.id = record.group_id = group
            groups[group] = record


def _register_image(ami: str, analysis: str, region: str) -> None:
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.amis import Ami

    backend = ec2_backends[DEFAULT_ACCOUNT_ID][region]
    backend.amis[ami] = Ami(backend, ami, name=f"{analysis} (local stand-in image)",
                            description="Registered by the local stack for the blueprint's AMI",
                            owner_id=DEFAULT_ACCOUNT_ID, region_name=region)


@contextmanager
def validating_launches() -> Iterator[None]:
    """Make the stack's EC2 refuse unknown images and key pairs, as AWS does (moto accepts any)."""
    before = moto_settings.ENABLE_AMI_VALIDATION, moto_settings.ENABLE_KEYPAIR_VALIDATION
    moto_settings.ENABLE_AMI_VALIDATION = moto_settings.ENABLE_KEYPAIR_VALIDATION = True
    try:
        yield
    finally:
        moto_settings.ENABLE_AMI_VALIDATION, moto_settings.ENABLE_KEYPAIR_VALIDATION = before
