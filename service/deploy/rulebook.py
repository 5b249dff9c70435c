"""Every planned request checked against :mod:`chalicelib.awslimits` before anything changes.

moto accepts what AWS refuses; these checks stand in for AWS. A problem is reported with the
blueprint key that produced the value (an AffiliateName, the PipelineName) so the developer knows
what to change.
"""

from __future__ import annotations

import json
from collections import defaultdict

from chalicelib import awslimits
from chalicelib.blueprint import Blueprint
from service.deploy import naming
from service.deploy.changes import Call, Plan, Ref
from service.deploy.exceptions import DeployError

# IAM counts every inline policy of an identity together.
INLINE = {"put_role_policy": ("role", "RoleName"), "put_group_policy": ("group", "GroupName")}


def plan_problems(plan: Plan) -> list[str]:
    """What AWS would refuse among the plan's requests."""
    problems: list[str] = []
    inline: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for change in plan.changes:
        for step in change.steps:
            if not isinstance(step, Call):
                continue
            known = {k: v for k, v in step.params.items() if not isinstance(v, Ref)}  # outputs of earlier calls
            problems += awslimits.check_call(step.service, step.operation, known)
            if step.operation in INLINE:
                kind, key = INLINE[step.operation]
                inline[(kind, str(step.params[key]))][str(step.params["PolicyName"])] = str(step.params["PolicyDocument"])
    for (kind, name), documents in inline.items():
        problem = awslimits.inline_policies_problem(kind, name, documents.values())
        if problem:
            problems.append(problem)
    return problems


def blueprint_problems(blueprint: Blueprint) -> list[str]:
    """Names derived from the blueprint that no planned call carries (Chalice makes them) or that
    every deploy makes: checked without reading AWS, so ``blueprint check`` can refuse them."""
    bucket = blueprint.name
    stage = naming.stage_name(bucket)
    problems = [p for kind, name in naming.chalice_names(stage) if (p := awslimits.check_name(kind, name))]
    problems += awslimits.check_call("iam", "create_role", {"RoleName": naming.instance_role(bucket)})
    for affiliate in blueprint.affiliates:
        group = naming.iam_group_name(bucket, affiliate.name)
        if len(group) <= awslimits.IAM_GROUP_NAME:  # too long: refused with the longest AffiliateName allowed
            problems += awslimits.check_call("iam", "create_group", {"GroupName": group})
        problems += awslimits.check_call("ssm", "put_parameter", {"Name": naming.budget_parameter(affiliate.name, bucket)})
        problems += awslimits.check_call("ec2", "run_instances", {"TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": "group", "Value": affiliate.name}]}]})
        problems += [f"IAM user name {u!r} must be 1-{awslimits.IAM_USER_NAME} letters, digits and + = , . @ _ -"
                     for u in affiliate.usernames if awslimits.check_call("iam", "create_user", {"UserName": u})]
    return [_blamed(p, blueprint) for p in problems]


def refuse(plan: Plan, blueprint: Blueprint | None = None) -> None:
    """Raise before any change when AWS would refuse part of the plan."""
    problems = [_blamed(p, blueprint) if blueprint else p for p in plan_problems(plan)]
    if problems:
        shown = " ".join(f"({i}) {p}" for i, p in enumerate(problems[:5], 1))
        more = f" ... and {len(problems) - 5} more." if len(problems) > 5 else ""
        raise DeployError(f"AWS would refuse this plan, so nothing was changed: {shown}{more}")


def _blamed(problem: str, blueprint: Blueprint) -> str:
    """The problem and the blueprint key to change (the longest affiliate name it mentions, else the
    PipelineName when it holds the bucket name)."""
    for affiliate in sorted(blueprint.affiliates, key=lambda a: -len(a.name)):
        if affiliate.name and (affiliate.name in problem or json.dumps(affiliate.name)[1:-1] in problem):
            return f"{problem}: change UXData.Affiliates AffiliateName {affiliate.name[:60]!r}."
    if blueprint.name in problem or naming.stage_name(blueprint.name) in problem:
        return f"{problem}: change the PipelineName."
    return f"{problem} (a defect in NeuroCAAS: please report it)."
