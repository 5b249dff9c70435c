"""Gathering what the planner needs from AWS: inputs that exist, the config, the budget state."""

from __future__ import annotations

import json

from chalicelib import pricing
from chalicelib.awsclient import AWSClient, ObjectMissing
from chalicelib.blueprint import AnalysisSettings
from chalicelib.paths import ObjectRef
from chalicelib.plan import BudgetState, InputFacts
from chalicelib.submission import Submission

BUDGET_PARAMETER = "/neurocaas/budgets/{group}/{bucket}"


def gather_inputs(aws: AWSClient, settings: AnalysisSettings, submission: Submission) -> InputFacts:
    """Which submitted objects exist, the parameter file's body, and the image's root disk."""
    existing = frozenset(ref for ref in set(submission.datasets) if aws.exists(ref))
    try:
        config_body: bytes | None = aws.get_object(submission.config).body
    except ObjectMissing:
        config_body = None
    # The image is only looked up when the parameter file asks for a bigger disk.
    image_root = None
    if config_body is not None and b"__dataset_size__" in config_body:
        image_root = aws.image_root(settings.ami)
    return InputFacts(existing=existing, config_body=config_body, image_root=image_root)


def _dollars(value: object) -> float:
    try:
        return max(float(value), 0.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def gather_budget(aws: AWSClient, settings: AnalysisSettings, group: str) -> BudgetState:
    """The group's limit and spending, and how many instances the analysis runs now."""
    parameter = BUDGET_PARAMETER.format(group=group, bucket=settings.bucket_name)
    configured = aws.get_parameter(parameter)
    if configured is not None:
        limit, source = _dollars(configured), f"SSM parameter {parameter}"
    elif settings.maxcost is not None:
        limit, source = settings.maxcost, "the analysis's MAXCOST"
    else:
        limit, source = None, "no budget set"
    running = aws.find_instances({"analysis": settings.bucket_name})
    running_cost = sum(
        pricing.estimate(i.instance_type, 1, _dollars(i.tags.get("Timeout", settings.default_duration)))
        for i in running if i.tags.get("group") == group
    )
    spent = 0.0
    if limit is not None:
        for key in aws.list_keys(settings.bucket_name, f"logs/{group}/"):
            if key.endswith(".json"):
                spent += _billed(aws, settings.bucket_name, key)
    return BudgetState(limit=limit, limit_source=source, spent=round(spent, 4),
                       running_cost=round(running_cost, 4), running_instances=len(running))


def _billed(aws: AWSClient, bucket: str, key: str) -> float:
    """The cost of one billing-history record (written when an instance stops)."""
    try:
        record = json.loads(aws.get_object(ObjectRef(bucket, key)).body)
    except (ObjectMissing, ValueError):
        return 0.0
    if not isinstance(record, dict):
        return 0.0
    return _dollars(record.get("cost", record.get("actual_cost", 0.0)))
