"""Shared pieces of the deployment tests: an AWS account in moto, a project copy, a fake chalice.

Not a test module itself (tests/test_deploy_*.py import it).
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import botocore.client
from moto.ec2.models.amis import AMIS

from chalicelib.blueprint import Blueprint, load_blueprint
from service.deploy import commands, naming
from service.deploy.awsstate import Clients
from service.deploy.commands import Outcome

REPO = Path(__file__).parents[1]
REGION = "us-east-1"
READ_ONLY = ("Get", "List", "Head", "Describe")


@dataclass
class FakeChalice:
    """Stands in for the ``chalice`` command: records each call, succeeds (or fails when told); a
    deploy makes the stage's functions (and their roles) in moto as Chalice would name them."""

    calls: list[tuple[list[str], Path, dict[str, str]]] = field(default_factory=list)
    exit_code: int = 0

    def __call__(self, args: Any, cwd: Path, env: Any) -> int:
        self.calls.append((list(args), cwd, dict(env)))
        if self.exit_code == 0 and args[0] == "deploy":
            make_functions(args[args.index("--stage") + 1])
        return self.exit_code


def make_functions(stage: str) -> None:
    """The stage's functions, as ``chalice deploy`` makes them, once."""
    iam, functions = boto3.client("iam", region_name=REGION), boto3.client("lambda", region_name=REGION)
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return None\n")
    for handler in naming.LAMBDA_HANDLERS:
        name = f"{naming.lambda_prefix(stage)}{handler}"
        try:
            functions.get_function(FunctionName=name)
            continue
        except functions.exceptions.ResourceNotFoundException:
            pass
        role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        functions.create_function(FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
                                  Code={"ZipFile": package.getvalue()})


@dataclass
class Account:
    """A moto AWS account, a project folder and a NEUROCAAS_HOME to deploy from."""

    tmp: Path
    clients: Clients = field(init=False)
    chalice: FakeChalice = field(default_factory=FakeChalice)

    def __post_init__(self) -> None:
        self.clients = Clients(boto3.Session(region_name=REGION), REGION)
        self.home = self.tmp / "home"
        self.project = self.tmp / "project"
        (self.project / ".chalice").mkdir(parents=True)
        shutil.copy(REPO / ".chalice" / "config.json", self.project / ".chalice" / "config.json")
        for name in ("app.py", "requirements.txt"):
            shutil.copy(REPO / name, self.project / name)
        self.ami = AMIS[0]["ami_id"]  # one of moto's built-in images (listing them all takes a second)

    def blueprint(self, name: str = "spikes-test", groups: dict[str, list[str]] | None = None,
                  **config: Any) -> Blueprint:
        groups = {"alab": ["alice"], "blab": ["bob"]} if groups is None else groups
        document = {
            "PipelineName": name, "REGION": REGION,
            "Lambda": {"LambdaConfig": {
                "AMI": self.ami, "INSTANCE_TYPE": "t2.micro", "ALLOWED_INSTANCE_TYPES": ["t2.micro", "m5.large"],
                "COMMAND": 'cd /home/ubuntu && neurocaas_remote/run_main.sh "{}" "{}" "{}" "{}" analysis.sh',
                "MAXCOST": 40, "IAM_ROLE": "SSMRole", **config}},
            "UXData": {"Affiliates": [{"AffiliateName": g, "UserNames": u} for g, u in groups.items()]},
        }
        folder = self.tmp / "blueprints" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "stack_config_template.json").write_text(json.dumps(document))
        return load_blueprint(folder)

    def users(self, *names: str) -> None:
        for name in names:
            self.clients("iam").create_user(UserName=name)

    def init(self, **options: Any) -> Outcome:
        return commands.initialise(self.clients, home=self.home, **{"ssh_cidr": "203.0.113.7/32", **options})

    def deploy(self, blueprint: Blueprint, **options: Any) -> Outcome:
        return commands.deploy(self.clients, blueprint, self.project, home=self.home, chalice=self.chalice, **options)

    def destroy(self, blueprint: Blueprint, **options: Any) -> Outcome:
        return commands.destroy(self.clients, blueprint, self.project, home=self.home, chalice=self.chalice, **options)


@contextmanager
def recorded_calls() -> Iterator[list[tuple[str, str, dict[str, Any]]]]:
    """Every AWS API call made inside the block, as (IAM service prefix, operation, parameters)."""
    calls: list[tuple[str, str, dict[str, Any]]] = []
    original = botocore.client.BaseClient._make_api_call

    def record(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append((self.meta.service_model.signing_name, operation, params))
        return original(self, operation, params)

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", record):
        yield calls


def changing(calls: list[tuple[str, str, dict[str, Any]]]) -> list[str]:
    """The calls that could change something (anything but Get/List/Head/Describe)."""
    return [f"{service}:{op}" for service, op, _ in calls if not op.startswith(READ_ONLY)]


def snapshot(account: Account) -> dict[str, Any]:
    """Everything deploy and init can touch, as comparable values."""
    c = account.clients
    iam, ec2, ssm, s3 = c("iam"), c("ec2"), c("ssm"), c("s3")
    groups = {}
    for group in iam.list_groups()["Groups"]:
        name = group["GroupName"]
        groups[name] = {
            "path": group["Path"], "id": group["GroupId"],
            "members": sorted(u["UserName"] for u in iam.get_group(GroupName=name)["Users"]),
            "policies": {p: iam.get_group_policy(GroupName=name, PolicyName=p)["PolicyDocument"]
                         for p in iam.list_group_policies(GroupName=name)["PolicyNames"]}}
    roles = {r["RoleName"]: {p: iam.get_role_policy(RoleName=r["RoleName"], PolicyName=p)["PolicyDocument"]
                             for p in iam.list_role_policies(RoleName=r["RoleName"])["PolicyNames"]}
             for r in iam.list_roles()["Roles"]}
    profiles = {p["InstanceProfileName"]: [r["RoleName"] for r in p["Roles"]]
                for p in iam.list_instance_profiles()["InstanceProfiles"]}
    security_groups = {g["GroupId"]: (g["GroupName"], g["IpPermissions"])
                       for g in ec2.describe_security_groups()["SecurityGroups"]}
    keys = {k["KeyName"]: k["KeyPairId"] for k in ec2.describe_key_pairs()["KeyPairs"]}
    parameters = {p["Name"]: (p["Value"], p["Version"]) for p in ssm.get_parameters_by_path(
        Path="/", Recursive=True, WithDecryption=True)["Parameters"]}
    buckets = {}
    for bucket in s3.list_buckets()["Buckets"]:
        name = bucket["Name"]
        buckets[name] = {
            "keys": sorted((o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=name).get("Contents", ())),
            "block": s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
            "encryption": s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]}
    files = {str(p.relative_to(account.tmp)): p.read_text() for p in sorted(account.tmp.rglob("*")) if p.is_file()}
    return {"groups": groups, "roles": roles, "profiles": profiles, "security_groups": security_groups,
            "keys": keys, "parameters": parameters, "buckets": buckets, "files": files}


@contextmanager
def aws_rules() -> Iterator[list[str]]:
    """moto made strict: every AWS call inside the block is checked against the rulebook first and
    refused as AWS would (ValidationError); the problems found are collected too."""
    from botocore import xform_name
    from botocore.exceptions import ClientError

    from chalicelib import awslimits

    problems: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def strict(self: Any, operation: str, params: dict[str, Any]) -> Any:
        found = awslimits.check_call(self.meta.service_model.service_name, xform_name(operation), params)
        if found:
            problems.extend(found)
            raise ClientError({"Error": {"Code": "ValidationError", "Message": "; ".join(found)}}, operation)
        return original(self, operation, params)

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", strict):
        yield problems
