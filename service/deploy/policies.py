"""The IAM policy documents of a deployment, written by hand (pure: no AWS calls).

- the group policy: one affiliate's folder, NeuroCAAS's pattern with its defects fixed;
- the instance role: trust for EC2, and per analysis read of inputs/configs and write of results;
- the job manager's Lambda policy: only the actions ``chalicelib`` calls, scoped to one analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib.analysiscard import CARD_KEY
from chalicelib.blueprint import AnalysisSettings
from service.deploy import naming
from service.deploy.records import InitRecord

Policy = dict[str, Any]
VERSION = "2012-10-17"
LAMBDA_HANDLERS = naming.LAMBDA_HANDLERS


def _document(*statements: dict[str, Any]) -> Policy:
    return {"Version": VERSION, "Statement": list(statements)}


def _bucket(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def group_policy(bucket: str, group: str) -> Policy:
    """What a member of ``group`` may do in the analysis's bucket.

    List its own prefixes; put and delete in its inputs/, configs/ and submissions/; get and
    delete in its results/ and configs/. Nothing in another group's folder nor in logs/. Fixed
    from NeuroCAAS: no listing of the bucket's top level or of logs/ (which showed every group's
    name), no ``s3:ListAllMyBuckets`` and nothing on ``Resource: "*"``.
    """
    folder = f"{_bucket(bucket)}/{group}"
    return _document(
        {"Sid": "LocateTheBucket", "Effect": "Allow", "Action": "s3:GetBucketLocation",
         "Resource": _bucket(bucket)},
        {"Sid": "ListOwnFolder", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": _bucket(bucket),
         "Condition": {"StringLike": {"s3:prefix": [f"{group}/*"]}}},
        {"Sid": "UploadDataConfigsAndSubmissions", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
         "Resource": [f"{folder}/inputs/*", f"{folder}/configs/*", f"{folder}/submissions/*"]},
        {"Sid": "ReadResultsAndConfigs", "Effect": "Allow", "Action": ["s3:GetObject", "s3:DeleteObject"],
         "Resource": [f"{folder}/results/*", f"{folder}/configs/*"]},
        {"Sid": "ReadTheAnalysisCard", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"{_bucket(bucket)}/{CARD_KEY}"},
    )


def instance_trust_policy() -> Policy:
    """Only EC2 may take on the instance role."""
    return _document({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                      "Action": "sts:AssumeRole"})


def instance_policy(bucket: str, bypass_buckets: Sequence[str] = ()) -> Policy:
    """What an analysis's instances may do: read inputs and configs, read and write results.

    The boot script fetches the remote side (``neurocaas/agent/``) when the image lacks it; the
    remote side downloads ``{group}/inputs`` and ``{group}/configs`` (listing folder datasets), and
    writes status, logs and outputs under ``{group}/results/``. Storage bypass buckets named by the
    blueprint are opened the same way.
    """
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadInputsAndConfigs", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": [f"{_bucket(bucket)}/*/inputs/*", f"{_bucket(bucket)}/*/configs/*",
                      f"{_bucket(bucket)}/neurocaas/agent/*"]},
        {"Sid": "ReadAndWriteResults", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"{_bucket(bucket)}/*/results/*"},
        {"Sid": "ListJobFolders", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": _bucket(bucket),
         "Condition": {"StringLike": {"s3:prefix": ["*/inputs/*", "*/configs/*", "*/results/*"]}}},
    ]
    if bypass_buckets:
        statements += _bypass_statements(bypass_buckets)
    return _document(*statements)


def _bypass_statements(buckets: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {"Sid": "StorageBypassObjects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": [f"{_bucket(b)}/*" for b in buckets]},
        {"Sid": "StorageBypassListing", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": [_bucket(b) for b in buckets]},
    ]


def job_manager_policy(settings: AnalysisSettings, stage: str, shared: InitRecord, reaper: bool = False) -> Policy:
    """The Lambda's policy: every action ``chalicelib`` calls, on this analysis only.

    S3 on the bucket (and bypass buckets), launching only the analysis's image into the job
    security group and the default VPC (both from ``shared``, the init record) with the analysis's
    tags and instance types, stopping only instances tagged with the analysis, the analysis's
    budget parameters, passing only the analysis's instance role, the functions' own logs, and
    sending failed events to the stage's dead-letter queue (which only the reaper, ``reaper=True``,
    may read and delete from). EC2's Describe calls support no resource scoping, so they alone are
    on ``"*"``, with Service Quotas' read of the vCPU quota.
    """
    bucket, region, account = settings.bucket_name, shared.region, shared.account
    arn = "arn:aws"
    ec2 = f"{arn}:ec2:{region}:{account}"
    instance_types = sorted({*settings.instance_types_allowed, *settings.fallback_instance_types})
    tagged = {"aws:RequestTag/analysis": bucket}
    log_groups = [f"{arn}:logs:{region}:{account}:log-group:/aws/lambda/{naming.lambda_prefix(stage)}{h}"
                  for h in LAMBDA_HANDLERS]
    queue = naming.queue_arn(region, account, naming.dead_letter_queue(stage))
    role = f"{arn}:iam::{account}:role/{naming.instance_role(bucket)}"
    statements: list[dict[str, Any]] = [
        {"Sid": "AnalysisBucketObjects", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": f"{_bucket(bucket)}/*"},
        {"Sid": "AnalysisBucketListing", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": _bucket(bucket)},
        {"Sid": "LaunchTheAnalysisImageInTheJobSecurityGroup", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Resource": [f"{arn}:ec2:{region}::image/{settings.ami}", f"{ec2}:security-group/{shared.job_security_group}"]},
        {"Sid": "LaunchIntoTheDefaultVpc", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Resource": [f"{ec2}:subnet/*", f"{ec2}:network-interface/*"],
         "Condition": {"ArnEquals": {"ec2:Vpc": f"{ec2}:vpc/{shared.vpc_id}"}}},
        {"Sid": "LaunchTaggedInstancesOfAllowedTypes", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Resource": f"{ec2}:instance/*",
         "Condition": {"StringEquals": {**tagged, "ec2:InstanceType": instance_types}}},
        {"Sid": "LaunchTaggedVolumes", "Effect": "Allow", "Action": "ec2:RunInstances",
         "Resource": f"{ec2}:volume/*", "Condition": {"StringEquals": tagged}},
        {"Sid": "TagOnLaunchOnly", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": [f"{ec2}:instance/*", f"{ec2}:volume/*"],
         "Condition": {"StringEquals": {"ec2:CreateAction": "RunInstances"}}},
        {"Sid": "StopOnlyTheAnalysisInstances", "Effect": "Allow", "Action": "ec2:TerminateInstances",
         "Resource": f"{ec2}:instance/*", "Condition": {"StringEquals": {"aws:ResourceTag/analysis": bucket}}},
        {"Sid": "DescribeEC2", "Effect": "Allow",
         "Action": ["ec2:DescribeImages", "ec2:DescribeInstanceTypes", "ec2:DescribeInstances",
                    "ec2:DescribeSubnets", "ec2:DescribeSpotPriceHistory"], "Resource": "*"},
        # GetServiceQuota supports no resource-level permission (parliament's IAM data); quotas are not secret.
        {"Sid": "ReadVcpuQuotas", "Effect": "Allow", "Action": "servicequotas:GetServiceQuota", "Resource": "*"},
        {"Sid": "ReadBudgets", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": f"{arn}:ssm:{region}:{account}:parameter"
                     + naming.budget_parameter("*", bucket)},
        {"Sid": "PassOnlyTheAnalysisInstanceRole", "Effect": "Allow", "Action": "iam:PassRole",
         "Resource": role, "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}},
        {"Sid": "FunctionLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [*log_groups, *(f"{group}:*" for group in log_groups)]},
        {"Sid": "SendFailedEvents", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue},
    ]
    if reaper:
        statements.append({"Sid": "ReplayFailedEvents", "Effect": "Allow",
                           "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                           "Resource": queue})
    if settings.bypass_buckets:
        statements[2:2] = _bypass_statements(settings.bypass_buckets)
    return _document(*statements)


SSM_AGENT_ACTIONS = (
    "ssm:UpdateInstanceInformation", "ssm:ListInstanceAssociations", "ssm:ListAssociations",
    "ssm:DescribeAssociation", "ssm:GetDocument", "ssm:DescribeDocument", "ssm:UpdateInstanceAssociationStatus",
    "ssm:UpdateAssociationStatus", "ssm:GetManifest", "ssm:PutInventory", "ssm:PutComplianceItems",
    "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel", "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage", "ec2messages:DeleteMessage", "ec2messages:FailMessage",
    "ec2messages:GetEndpoint", "ec2messages:GetMessages", "ec2messages:SendReply",
)


def ssm_agent_policy() -> dict[str, Any]:
    """What the SSM agent on an instance needs to take Run Command (AmazonSSMManagedInstanceCore's
    agent actions, without its wildcard on every SSM parameter)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "SsmAgent", "Effect": "Allow", "Action": list(SSM_AGENT_ACTIONS), "Resource": "*"},
    ]}
