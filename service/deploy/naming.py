"""What NeuroCAAS calls the things it makes in an AWS account, and where it keeps its records.

Everything an analysis owns carries its bucket name (shortened with a digest where AWS's name
limits require), so analyses never share (or clash on) a resource; what ``neurocaas init`` makes
once per account and region has a fixed name.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from chalicelib import awslimits
from chalicelib.facts import BUDGET_PARAMETER

# Made once per account and region by ``neurocaas init``.
JOB_SECURITY_GROUP = "neurocaas-job"
DEV_SECURITY_GROUP = "neurocaas-dev"
KEY_NAME = "neurocaas-dev"
KEY_PARAMETER = "/neurocaas/keys/neurocaas-dev"
SHARED_TAG = {"Key": "neurocaas", "Value": "shared"}

# Made per analysis by ``neurocaas deploy``.
GROUP_POLICY = "neurocaas-folder"
GROUP_FOLDERS = ("inputs", "configs", "submissions", "results")
INSTANCE_POLICY = "neurocaas-analysis"
SSM_AGENT_POLICY = "neurocaas-ssm-agent"
APP_NAME = "neurocaas"
# The Chalice handlers in app.py; each is a Lambda function named neurocaas-{stage}-{handler}.
LAMBDA_HANDLERS = ("on_submit", "on_cancel", "on_retry", "on_instance_state", "on_spot_interruption", "reaper")
# Chalice adds an EventBridge rule "{function}-event" for each of these (app.py's on_cw_event/schedule).
EVENT_HANDLERS = ("on_instance_state", "on_spot_interruption", "reaper")
# The longest stage whose derived names all fit: the longest is neurocaas-{stage}-{longest handler}-event.
STAGE_LIMIT = awslimits.RULE_NAME - max(len(f"{APP_NAME}--{handler}-event") for handler in EVENT_HANDLERS)

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
NAME_RULE = ("must be 3-63 lowercase letters, digits and dashes, starting and ending with a letter or "
             "digit: it becomes the analysis's S3 bucket name")
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3", "--table-s3")


def region_problem(region: str) -> str | None:
    """Why NeuroCAAS cannot deploy to ``region``, or None when it can."""
    if region.startswith(("cn-", "us-gov-")):
        return f"Region {region} is outside the standard AWS partition, which is the only one NeuroCAAS supports."
    return None


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an analysis (bucket) name, or None when it can."""
    if not NAME_PATTERN.match(name):
        return f"The name {name!r} {NAME_RULE}."
    if name.startswith(RESERVED_PREFIXES) or name.endswith(RESERVED_SUFFIXES):
        return (f"The name {name!r} starts or ends with a part S3 reserves "
                f"({', '.join(RESERVED_PREFIXES + RESERVED_SUFFIXES)}); choose another.")
    return None


def iam_group_name(bucket: str, affiliate: str) -> str:
    """The IAM group of one affiliate: bucket names hold no dot, so the first dot separates the two."""
    return f"{bucket}.{affiliate}"


def group_path(bucket: str) -> str:
    """The IAM path every group of an analysis is made under (so they can be listed)."""
    return f"/neurocaas/{bucket}/"


def fit(name: str, limit: int) -> str:
    """``name``, or when longer than ``limit`` its start and a digest of all of it (stable, distinct)."""
    if len(name) <= limit:
        return name
    return f"{name[:limit - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# Before each analysis had its own role, init made one shared role and deploy added a policy per analysis.
LEGACY_INSTANCE_ROLE = "neurocaas-instance"


def legacy_instance_policy(bucket: str) -> str:
    return f"neurocaas-{bucket}"


def stage_name(bucket: str) -> str:
    """The analysis's Chalice stage: its bucket name, shortened so every name Chalice derives fits."""
    return fit(bucket, STAGE_LIMIT)


def instance_role(bucket: str) -> str:
    """The analysis's own instance role (and instance profile): only its instances get its bucket."""
    return fit(f"neurocaas-{bucket}", awslimits.IAM_ROLE_NAME)


def instance_profile(bucket: str) -> str:
    return instance_role(bucket)


def dead_letter_queue(stage: str) -> str:
    """The SQS queue that keeps the events the stage's asynchronous functions failed on."""
    return f"{APP_NAME}-{stage}-failed"


def chalice_names(stage: str) -> list[tuple[str, str]]:
    """(kind, name) of everything Chalice names from the stage, for the rulebook."""
    names = []
    for handler in LAMBDA_HANDLERS:
        function = f"{lambda_prefix(stage)}{handler}"
        names += [("Lambda function", function), ("IAM role", function), ("log group", f"/aws/lambda/{function}")]
        if handler in EVENT_HANDLERS:
            names.append(("EventBridge rule", f"{function}-event"))
    return names + [("SQS queue", dead_letter_queue(stage))]


def budget_parameter(group: str, bucket: str) -> str:
    return BUDGET_PARAMETER.format(group=group, bucket=bucket)


def policy_file(stage: str) -> str:
    """The Chalice stage's IAM policy file, relative to ``.chalice/``."""
    return f"policy-{stage}.json"


def reaper_policy_file(stage: str) -> str:
    """The reaper's policy file: the stage's, plus reading the dead-letter queue."""
    return f"policy-{stage}-reaper.json"


def queue_url(region: str, account: str, name: str) -> str:
    return f"https://sqs.{region}.amazonaws.com/{account}/{name}"


def queue_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{name}"


def lambda_prefix(stage: str) -> str:
    """Chalice names the stage's functions ``{app}-{stage}-{handler}``."""
    return f"{APP_NAME}-{stage}-"


def neurocaas_home() -> Path:
    """$NEUROCAAS_HOME, by default ~/.neurocaas (as for the local stack's state)."""
    return Path(os.environ.get("NEUROCAAS_HOME") or Path.home() / ".neurocaas")


def account_dir(account: str, region: str, home: Path | None = None) -> Path:
    """Where the records of one account and region are kept: $NEUROCAAS_HOME/aws/{account}-{region}."""
    return (home or neurocaas_home()) / "aws" / f"{account}-{region}"
