"""Planning ``neurocaas deploy`` and ``neurocaas destroy`` for one analysis (pure).

Desired state comes from the blueprint and the init record; current state from
:mod:`service.deploy.awsstate` and :mod:`service.deploy.stagefiles`. The result is a
:class:`~service.deploy.changes.Plan`: empty when everything is as it should be.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from chalicelib import agent, awslimits
from chalicelib.analysiscard import CARD_KEY, AnalysisCard
from chalicelib.blueprint import Blueprint
from service import agentfile
from service.deploy import naming, policies, rulebook
from service.deploy.awsstate import AnalysisState, GroupState
from service.deploy.bucket import ABORT_UPLOADS_RULE, bucket_changes
from service.deploy.changes import (
    Action,
    Call,
    Chalice,
    Change,
    EmptyBucket,
    Plan,
    WriteFile,
)
from service.deploy.exceptions import DeployError
from service.deploy.records import InitRecord, deployed_text
from service.deploy.runtime import lambda_runtime
from service.deploy.users import membership_problem
from service.deploy.stagefiles import (
    LocalState,
    config_text,
    config_with_stage,
    deployable,
    policy_text,
    stage_block,
    stage_digest,
)

ON_SUBMIT_CONCURRENCY = 10  # submissions handled at once per analysis; bounds a burst of submit.json writes
ASYNC_FUNCTIONS = naming.LAMBDA_HANDLERS  # S3, EventBridge and schedules all invoke asynchronously


def folder_markers(affiliates: Iterable[str]) -> list[str]:
    """The empty objects that show each group's folders in the console."""
    return [f"{group}/{folder}/" for group in affiliates for folder in naming.GROUP_FOLDERS]


def bucket_objects(affiliates: Iterable[str]) -> list[str]:
    """The objects deploy puts into the bucket: the folder markers and the remote side's file."""
    return [*folder_markers(affiliates), agent.artifact_key()]


def refusals(blueprint: Blueprint, state: AnalysisState | None = None) -> list[str]:
    """Why this blueprint cannot be deployed as it is (checked before anything is created)."""
    bucket, settings = blueprint.name, blueprint.settings
    problems = [p for p in (naming.name_problem(bucket), naming.region_problem(settings.region)) if p]
    seen: dict[str, str] = {}
    for affiliate in blueprint.affiliates:
        name = naming.iam_group_name(bucket, affiliate.name)
        if len(name) > awslimits.IAM_GROUP_NAME:
            longest = awslimits.IAM_GROUP_NAME - len(bucket) - 1
            problems.append(f"The IAM group name {name[:40]}... would be longer than {awslimits.IAM_GROUP_NAME} "
                            f"characters: shorten the AffiliateName {affiliate.name[:40]}... to at most {longest} "
                            "characters (or the PipelineName).")
        if name.lower() in seen:
            problems.append(f"The AffiliateNames {seen[name.lower()]!r} and {affiliate.name!r} differ only in case, "
                            "and IAM group names ignore case: rename one of them.")
        seen.setdefault(name.lower(), affiliate.name)
    problems += rulebook.blueprint_problems(blueprint)
    if state is None:
        return problems
    if not state.bucket.owned:
        problems.append(f"The bucket name {bucket} is taken by another AWS account: choose another PipelineName.")
    elif state.bucket.exists and state.bucket.region != settings.region:
        problems.append(f"The bucket {bucket} exists in {state.bucket.region}, not {settings.region}: set the "
                        f"blueprint's REGION to {state.bucket.region} or choose another PipelineName.")
    rules = state.bucket.lifecycle_rules
    if len(rules) >= awslimits.LIFECYCLE_RULES_MAX and not any(r.get("ID") == ABORT_UPLOADS_RULE for r in rules):
        problems.append(f"The bucket {bucket} already has {len(rules)} lifecycle rules, S3's most, so deploy cannot "
                        "add the one that removes unfinished uploads: remove one of them and deploy again.")
    if not state.image_found:
        problems.append(f"The machine image {settings.ami} does not exist in {settings.region} (or this account "
                        "cannot use it): set Lambda.LambdaConfig.AMI to your analysis's image.")
    return problems


QUEUE_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's longest


def _role_changes(blueprint: Blueprint, state: AnalysisState) -> list[Change]:
    """The analysis's own instance role and profile: its bucket's job paths and the SSM agent, nothing else."""
    bucket = blueprint.name
    role, profile, current = naming.instance_role(bucket), naming.instance_profile(bucket), state.role
    trust = policies.instance_trust_policy()
    wanted = {naming.INSTANCE_POLICY: policies.instance_policy(bucket, blueprint.settings.bypass_buckets),
              naming.SSM_AGENT_POLICY: policies.ssm_agent_policy()}
    changes = []
    if not current.exists:
        changes.append(Change(Action.CREATE, f"IAM role {role}", f"for {bucket}'s instances only", (
            Call("iam", "create_role", {"RoleName": role, "AssumeRolePolicyDocument": json.dumps(trust),
                                        "Description": f"NeuroCAAS instances of {bucket}",
                                        "Tags": [{"Key": "neurocaas:analysis", "Value": bucket}]}),)))
    elif current.trust != trust:
        changes.append(Change(Action.UPDATE, f"IAM role {role}", "only EC2 may assume it", (
            Call("iam", "update_assume_role_policy", {"RoleName": role, "PolicyDocument": json.dumps(trust)}),)))
    for name, document in wanted.items():
        if current.policies.get(name) != document:
            changes.append(Change(Action.CREATE if name not in current.policies else Action.UPDATE,
                                  f"policy {name} of {role}", POLICY_PURPOSE[name], (
                Call("iam", "put_role_policy", {"RoleName": role, "PolicyName": name,
                                                "PolicyDocument": json.dumps(document)}),)))
    changes += [Change(Action.DELETE, f"policy {name} of {role}", "not NeuroCAAS's", (
        Call("iam", "delete_role_policy", {"RoleName": role, "PolicyName": name}),))
        for name in sorted(current.policies) if name not in wanted]
    if state.legacy_policy:
        changes.append(_delete_legacy_policy(bucket))
    add = Call("iam", "add_role_to_instance_profile", {"InstanceProfileName": profile, "RoleName": role})
    if current.profile_roles is None:
        changes.append(Change(Action.CREATE, f"instance profile {profile}", f"holding {role}", (
            Call("iam", "create_instance_profile", {"InstanceProfileName": profile,
                                                    "Tags": [{"Key": "neurocaas:analysis", "Value": bucket}]}), add)))
    elif current.profile_roles != (role,):
        removals = tuple(Call("iam", "remove_role_from_instance_profile", {"InstanceProfileName": profile, "RoleName": r})
                         for r in current.profile_roles)
        changes.append(Change(Action.UPDATE, f"instance profile {profile}", f"holds {role} only", (*removals, add)))
    return changes


POLICY_PURPOSE = {naming.INSTANCE_POLICY: "instances read the inputs and configs and write the results",
                  naming.SSM_AGENT_POLICY: "the SSM agent, so development instances accept Run Command"}


def _delete_legacy_policy(bucket: str) -> Change:
    """An earlier NeuroCAAS opened every analysis's bucket to one shared role: close this one's."""
    name = naming.legacy_instance_policy(bucket)
    return Change(Action.DELETE, f"policy {name} of the shared role {naming.LEGACY_INSTANCE_ROLE}",
                  "every analysis's instances could reach this bucket through it", (
                      Call("iam", "delete_role_policy", {"RoleName": naming.LEGACY_INSTANCE_ROLE, "PolicyName": name}),))


def _delete_role(bucket: str, state: AnalysisState) -> list[Change]:
    role, profile, current = naming.instance_role(bucket), naming.instance_profile(bucket), state.role
    steps: list[Call] = [Call("iam", "remove_role_from_instance_profile", {"InstanceProfileName": profile, "RoleName": r})
                         for r in current.profile_roles or ()]
    if current.profile_roles is not None:
        steps.append(Call("iam", "delete_instance_profile", {"InstanceProfileName": profile}))
    if current.exists:
        steps += [Call("iam", "delete_role_policy", {"RoleName": role, "PolicyName": p}) for p in sorted(current.policies)]
        steps.append(Call("iam", "delete_role", {"RoleName": role}))
    return [Change(Action.DELETE, f"IAM role and instance profile {role}", "", tuple(steps))] if steps else []


def _delete_group(group: GroupState, why: str) -> Change:
    steps = [Call("iam", "remove_user_from_group", {"GroupName": group.name, "UserName": u}) for u in group.members]
    steps += [Call("iam", "delete_group_policy", {"GroupName": group.name, "PolicyName": p}) for p in group.policies]
    steps.append(Call("iam", "delete_group", {"GroupName": group.name}))
    return Change(Action.DELETE, f"IAM group {group.name}", why, tuple(steps))


def _group_changes(blueprint: Blueprint, state: AnalysisState) -> tuple[list[Change], list[str]]:
    bucket, changes, notes = blueprint.name, [], []
    wanted = {naming.iam_group_name(bucket, a.name): a for a in blueprint.affiliates}
    for name, affiliate in wanted.items():
        policy = policies.group_policy(bucket, affiliate.name)
        put = Call("iam", "put_group_policy", {"GroupName": name, "PolicyName": naming.GROUP_POLICY,
                                               "PolicyDocument": json.dumps(policy)})
        current = state.groups.get(name)
        users = [u for u in affiliate.usernames if u in state.users and (current is None or u not in current.members)]
        adds = tuple(Call("iam", "add_user_to_group", {"GroupName": name, "UserName": u}) for u in users)
        if current is None:
            changes.append(Change(Action.CREATE, f"IAM group {name}",
                                  f"folder policy for {affiliate.name}/; members: {', '.join(users) or 'none'}",
                                  (Call("iam", "create_group", {"GroupName": name, "Path": naming.group_path(bucket)}),
                                   put, *adds)))
        else:
            if current.policies.get(naming.GROUP_POLICY) != policy:
                changes.append(Change(Action.UPDATE, f"IAM group {name}", "folder policy", (put,)))
            if adds:
                changes.append(Change(Action.UPDATE, f"IAM group {name}", f"add members {', '.join(users)}", adds))
        notes += [f"IAM user {u} (group {affiliate.name} in the blueprint) does not exist: create it and deploy "
                  f"again, or run `neurocaas users add {bucket} {affiliate.name} {u} --create`."
                  for u in affiliate.usernames if u not in state.users]
    changes += [_delete_group(g, "no longer in the blueprint (its folder and data are kept)")
                for name, g in sorted(state.groups.items()) if name not in wanted]
    joining: dict[str, int] = {}
    for change in changes:
        for step in change.steps:
            if isinstance(step, Call) and step.operation == "add_user_to_group":
                joining[step.params["UserName"]] = joining.get(step.params["UserName"], 0) + 1
    for user, count in sorted(joining.items()):
        problem = membership_problem(user, state.memberships.get(user, 0), count)
        if problem:
            raise DeployError(problem)
    return changes, notes



def _budget_changes(blueprint: Blueprint, state: AnalysisState) -> list[Change]:
    bucket, maxcost = blueprint.name, blueprint.settings.maxcost
    wanted = {naming.budget_parameter(a.name, bucket) for a in blueprint.affiliates}
    changes = []
    if maxcost is not None:
        value = blueprint.settings.to_environ()["MAXCOST"]
        changes += [Change(Action.CREATE, f"budget {name}", f"${value} (the blueprint's MAXCOST)", (
            Call("ssm", "put_parameter", {"Name": name, "Value": value, "Type": "String",
                                          "Description": "NeuroCAAS budget of a group (dollars)"}),))
            for name in sorted(wanted - set(state.budgets))]
    stale = sorted(set(state.budgets) - wanted)
    if stale:
        changes.append(_delete_budgets(stale, "groups no longer in the blueprint"))
    return changes


def _delete_budgets(names: list[str], why: str) -> Change:
    steps = tuple(Call("ssm", "delete_parameters", {"Names": names[i:i + 10]}) for i in range(0, len(names), 10))
    return Change(Action.DELETE, f"budget(s) {', '.join(names)}", why, steps)


def plan_deploy(blueprint: Blueprint, shared: InitRecord, state: AnalysisState, local: LocalState,
                deployed_record: Path) -> Plan:
    """Everything ``neurocaas deploy`` changes for this analysis, in order; refusals raise first."""
    problems = refusals(blueprint, state)
    if problems:
        raise DeployError(problems[0] if len(problems) == 1 else " ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)))
    bucket, settings = blueprint.name, blueprint.settings
    changes = bucket_changes(blueprint, state)
    missing = [m for m in folder_markers(a.name for a in blueprint.affiliates) if m not in state.bucket.folders]
    if missing:
        changes.append(Change(Action.CREATE, f"folders in s3://{bucket}", ", ".join(missing), tuple(
            Call("s3", "put_object", {"Bucket": bucket, "Key": key, "Body": b""}) for key in missing)))
    if agent.artifact_key() not in state.bucket.folders:
        changes.append(Change(Action.CREATE, f"remote side s3://{bucket}/{agent.artifact_key()}",
                              "instances install it from there when their image lacks it", (
            Call("s3", "put_object", {"Bucket": bucket, "Key": agent.artifact_key(), "Body": agentfile.artifact(),
                                      "ContentType": "application/zip"}),)))
    card = AnalysisCard.of(settings, blueprint.parameters_schema).to_bytes()
    if state.bucket.card != card:
        changes.append(Change(Action.CREATE if state.bucket.card is None else Action.UPDATE,
                              f"analysis card s3://{bucket}/{CARD_KEY}",
                              "instance types, the cap and the declared parameters, checked before uploading and at "
                              "step 2", (Call("s3", "put_object", {"Bucket": bucket, "Key": CARD_KEY, "Body": card,
                                                                    "ContentType": "application/json"}),)))
    changes += _role_changes(blueprint, state)
    if settings.spot != "never" and not state.spot_role:
        changes.append(Change(Action.CREATE, "EC2 Spot service-linked role (for the whole account)",
                              f"EC2 needs it to launch Spot instances (SPOT: {settings.spot}); the job manager "
                              "may not create it itself", (Call("iam", "create_service_linked_role", {
                                  "AWSServiceName": awslimits.SPOT_SERVICE}),)))
    if not state.queue_found:
        queue = naming.dead_letter_queue(naming.stage_name(bucket))
        changes.append(Change(Action.CREATE, f"SQS queue {queue}", "keeps events the functions failed on, for replay", (
            Call("sqs", "create_queue", {"QueueName": queue, "Attributes": {
                "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS), "SqsManagedSseEnabled": "true"},
                "tags": {"neurocaas:analysis": bucket}}),)))
    group_changes, notes = _group_changes(blueprint, state)
    changes += group_changes + _budget_changes(blueprint, state)
    stage_changes, stage_notes = _stage_changes(blueprint, shared, state, local, deployed_record)
    changes += stage_changes
    notes += stage_notes + _override_notes(blueprint, shared)
    plan = Plan(f"Deploy {bucket} to account {state.account}, {state.region}:", tuple(changes), tuple(notes))
    rulebook.refuse(plan, blueprint)
    problem = account_quota_problem(plan, state, local)
    if problem:
        raise DeployError(problem)
    return plan


def account_quota_problem(plan: Plan, state: AnalysisState, local: LocalState) -> str | None:
    """IAM's account quotas (groups 300, roles and instance profiles 1000 by default): what this deploy
    adds must fit, Chalice's four function roles included for a new stage."""
    made = {"Groups": ("create_group",), "Roles": ("create_role", "create_service_linked_role"),
            "InstanceProfiles": ("create_instance_profile",)}
    for kind, operations in made.items():
        quota = state.iam_summary.get(f"{kind}Quota")
        adding = sum(1 for c in plan.changes for s in c.steps if isinstance(s, Call) and s.operation in operations)
        if kind == "Roles" and not local.chalice_deployed:
            adding += len(naming.LAMBDA_HANDLERS)
        if quota is not None and adding and state.iam_summary.get(kind, 0) + adding > quota:
            return (f"The account has {state.iam_summary.get(kind, 0)} IAM {kind} of the {quota} its quota allows, "
                    f"and this deploy adds {adding}: remove unused ones, or ask AWS for more in the Service Quotas "
                    "console (IAM), then deploy again.")
    return None


def _stage_changes(blueprint: Blueprint, shared: InitRecord, state: AnalysisState, local: LocalState,
                   deployed_record: Path) -> tuple[list[Change], list[str]]:
    stage, changes, notes = naming.stage_name(blueprint.name), [], []
    deployed = deployable(blueprint, shared.job_security_group)
    texts = {naming.policy_file(stage): policy_text(policies.job_manager_policy(deployed.settings, stage, shared)),
             naming.reaper_policy_file(stage): policy_text(
                 policies.job_manager_policy(deployed.settings, stage, shared, reaper=True))}
    for name, text in texts.items():
        if local.policies.get(name) != text:
            changes.append(Change(Action.CREATE if local.policies.get(name) is None else Action.UPDATE,
                                  f"job manager policy .chalice/{name}",
                                  "only the actions the job manager uses, on this analysis",
                                  (WriteFile(local.policy_path(name), text),)))
    concurrency = ON_SUBMIT_CONCURRENCY
    if state.concurrency_room is not None and state.concurrency_room < ON_SUBMIT_CONCURRENCY:
        concurrency = 0
        notes.append(f"on_submit gets no reserved concurrency: the account's Lambda concurrency leaves room for "
                     f"{max(state.concurrency_room, 0)} (Lambda keeps {awslimits.UNRESERVED_CONCURRENCY} unreserved). "
                     "Ask AWS to raise the Lambda concurrent executions quota, then deploy again.")
    queue = naming.dead_letter_queue(stage)
    block = stage_block(deployed, naming.queue_url(state.region, state.account, queue), concurrency)
    config = config_with_stage(local.config, stage, block)
    if config != local.config:
        changes.append(Change(Action.CREATE if stage not in local.config.get("stages", {}) else Action.UPDATE,
                              f"Chalice stage {stage}", "Lambda environment and policy file in .chalice/config.json",
                              (WriteFile(local.config_path, config_text(config)),)))
    runtime = lambda_runtime()
    problem = awslimits.runtime_problem(runtime)
    if problem:
        raise DeployError(f"{problem}: unset NEUROCAAS_LAMBDA_RUNTIME, or set it to one of these, and deploy again.")
    notes.append(f"The functions run on {runtime} (Lambda's runtime for this deploy, whatever Python runs neurocaas).")
    digest = stage_digest(config, stage, list(texts.values()), local.code_digest, runtime)
    if local.deployed_digest != digest:
        arn = naming.queue_arn(state.region, state.account, queue)
        failures = tuple(Call("lambda", "put_function_event_invoke_config", {
            "FunctionName": f"{naming.lambda_prefix(stage)}{handler}", "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Destination": arn}}}) for handler in ASYNC_FUNCTIONS)
        changes.append(Change(Action.RUN, f"chalice deploy --stage {stage}",
                              f"the job manager's functions on {runtime}, their roles and the S3 trigger; "
                              f"failed events go to {queue}", (
            Chalice(("deploy", "--stage", stage), local.project, blueprint.name, state.region, runtime),
            *failures, WriteFile(deployed_record, deployed_text(digest)))))
    return changes, notes


def _override_notes(blueprint: Blueprint, shared: InitRecord) -> list[str]:
    settings, notes, profile = blueprint.settings, [], naming.instance_profile(blueprint.name)
    if settings.iam_role and settings.iam_role != profile:
        notes.append(f"IAM_ROLE {settings.iam_role} is replaced by {profile}, the analysis's own instance profile.")
    if settings.security_groups and settings.security_groups != (shared.job_security_group,):
        notes.append(f"SECURITY_GROUPS {', '.join(settings.security_groups)} are replaced by the job security group "
                     f"{shared.job_security_group} (from neurocaas init).")
    if settings.key_name:
        notes.append(f"KEY_NAME {settings.key_name} is not used: job instances accept no inbound connection.")
    return notes


def plan_destroy(blueprint: Blueprint, state: AnalysisState, local: LocalState, deployed_record: Path,
                 delete_data: bool = False) -> Plan:
    """Everything ``neurocaas destroy`` removes; refuses while the analysis has instances running."""
    bucket, stage = blueprint.name, naming.stage_name(blueprint.name)
    if state.running:
        raise DeployError(f"{len(state.running)} instance(s) of {bucket} are pending or running "
                          f"({', '.join(state.running[:5])}): wait for their jobs to end or cancel them, then destroy again.")
    changes, notes = [], []
    if local.chalice_deployed or local.deployed_digest is not None:
        changes.append(Change(Action.RUN, f"chalice delete --stage {stage}", "the job manager's functions and role", (
            Chalice(("delete", "--stage", stage), local.project, bucket, state.region),
            WriteFile(deployed_record, None))))
    if stage in local.config.get("stages", {}):
        changes.append(Change(Action.DELETE, f"Chalice stage {stage}", "from .chalice/config.json",
                              (WriteFile(local.config_path, config_text(config_with_stage(local.config, stage, None))),)))
    changes += [Change(Action.DELETE, f"job manager policy .chalice/{name}", "", (WriteFile(local.policy_path(name), None),))
                for name, text in local.policies.items() if text is not None]
    changes += [_delete_group(g, "and its folder policy") for _, g in sorted(state.groups.items())]
    if state.budgets:
        changes.append(_delete_budgets(sorted(state.budgets), "budgets of this analysis"))
    changes += _delete_role(bucket, state)
    if state.legacy_policy:
        changes.append(_delete_legacy_policy(bucket))
    if state.queue_found:
        queue = naming.dead_letter_queue(stage)
        changes.append(Change(Action.DELETE, f"SQS queue {queue}", "and the failed events it keeps", (
            Call("sqs", "delete_queue", {"QueueUrl": naming.queue_url(state.region, state.account, queue)}),)))
    if state.bucket.exists and state.bucket.owned:
        if delete_data:
            changes.append(Change(Action.DELETE, f"S3 bucket {bucket}", "and ALL its data (--delete-data)", (
                EmptyBucket(bucket), Call("s3", "delete_bucket", {"Bucket": bucket}))))
        else:
            notes.append(f"The bucket {bucket} and its data are kept; pass --delete-data to delete them too.")
    return Plan(f"Destroy {bucket} in account {state.account}, {state.region}:", tuple(changes), tuple(notes))
