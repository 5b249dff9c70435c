"""Planning ``neurocaas deploy`` and ``neurocaas destroy`` for one analysis (pure).

Desired state comes from the blueprint and the init record; current state from
:mod:`service.deploy.awsstate` and :mod:`service.deploy.stagefiles`. The result is a
:class:`~service.deploy.changes.Plan`: empty when everything is as it should be.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from chalicelib import agent
from chalicelib.blueprint import Blueprint
from service import agentfile
from service.deploy import naming, policies
from service.deploy.awsstate import AnalysisState, GroupState
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
from service.deploy.stagefiles import (
    LocalState,
    config_text,
    config_with_stage,
    deployable,
    policy_text,
    stage_block,
    stage_digest,
)


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
    for affiliate in blueprint.affiliates:
        name = naming.iam_group_name(bucket, affiliate.name)
        if len(name) > naming.IAM_NAME_LIMIT:
            problems.append(f"The IAM group name {name[:40]}... would be longer than {naming.IAM_NAME_LIMIT} "
                            f"characters: shorten the AffiliateName {affiliate.name[:40]}... or the PipelineName.")
    if state is None:
        return problems
    if not state.bucket.owned:
        problems.append(f"The bucket name {bucket} is taken by another AWS account: choose another PipelineName.")
    elif state.bucket.exists and state.bucket.region != settings.region:
        problems.append(f"The bucket {bucket} exists in {state.bucket.region}, not {settings.region}: set the "
                        f"blueprint's REGION to {state.bucket.region} or choose another PipelineName.")
    if not state.image_found:
        problems.append(f"The machine image {settings.ami} does not exist in {settings.region} (or this account "
                        "cannot use it): set Lambda.LambdaConfig.AMI to your analysis's image.")
    return problems


def _bucket_changes(blueprint: Blueprint, state: AnalysisState) -> list[Change]:
    bucket, region = blueprint.name, blueprint.settings.region
    block = Call("s3", "put_public_access_block", {"Bucket": bucket, "PublicAccessBlockConfiguration": {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}})
    encrypt = Call("s3", "put_bucket_encryption", {"Bucket": bucket, "ServerSideEncryptionConfiguration": {
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}})
    owner = Call("s3", "put_bucket_ownership_controls", {"Bucket": bucket, "OwnershipControls": {
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}})
    target = f"S3 bucket {bucket}"
    if not state.bucket.exists:
        create: dict[str, object] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        return [Change(Action.CREATE, target, "private (no ACLs), encrypted (SSE-S3), public access blocked",
                       (Call("s3", "create_bucket", create), block, encrypt))]
    fixes = [(state.bucket.public_access_blocked, "block all public access", block),
             (state.bucket.encrypted, "encrypt new objects (SSE-S3)", encrypt),
             (state.bucket.owner_enforced, "disable ACLs (bucket owner enforced)", owner)]
    return [Change(Action.UPDATE, target, what, (call,)) for done, what, call in fixes if not done]


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
    changes = _bucket_changes(blueprint, state)
    missing = [m for m in folder_markers(a.name for a in blueprint.affiliates) if m not in state.bucket.folders]
    if missing:
        changes.append(Change(Action.CREATE, f"folders in s3://{bucket}", ", ".join(missing), tuple(
            Call("s3", "put_object", {"Bucket": bucket, "Key": key, "Body": b""}) for key in missing)))
    if agent.artifact_key() not in state.bucket.folders:
        changes.append(Change(Action.CREATE, f"remote side s3://{bucket}/{agent.artifact_key()}",
                              "instances install it from there when their image lacks it", (
            Call("s3", "put_object", {"Bucket": bucket, "Key": agent.artifact_key(), "Body": agentfile.artifact(),
                                      "ContentType": "application/zip"}),)))
    wanted_instance = policies.instance_policy(bucket, settings.bypass_buckets)
    if state.instance_policy != wanted_instance:
        changes.append(Change(Action.CREATE if state.instance_policy is None else Action.UPDATE,
                              f"instance role policy {naming.instance_policy_name(bucket)}",
                              f"instances read {bucket}'s inputs and configs and write its results", (
            Call("iam", "put_role_policy", {"RoleName": shared.instance_role,
                                            "PolicyName": naming.instance_policy_name(bucket),
                                            "PolicyDocument": json.dumps(wanted_instance)}),)))
    group_changes, notes = _group_changes(blueprint, state)
    changes += group_changes + _budget_changes(blueprint, state)
    changes += _stage_changes(blueprint, shared, state, local, deployed_record)
    notes += _override_notes(blueprint, shared)
    return Plan(f"Deploy {bucket} to account {state.account}, {state.region}:", tuple(changes), tuple(notes))


def _stage_changes(blueprint: Blueprint, shared: InitRecord, state: AnalysisState, local: LocalState,
                   deployed_record: Path) -> list[Change]:
    stage, changes = blueprint.name, []
    deployed = deployable(blueprint, shared.instance_profile, shared.job_security_group)
    policy = policy_text(policies.job_manager_policy(deployed.settings, stage, shared))
    if local.policy_text != policy:
        changes.append(Change(Action.CREATE if local.policy_text is None else Action.UPDATE,
                              f"job manager policy .chalice/{naming.policy_file(stage)}",
                              "only the actions the job manager uses, on this analysis",
                              (WriteFile(local.policy_path(stage), policy),)))
    config = config_with_stage(local.config, stage, stage_block(deployed))
    if config != local.config:
        changes.append(Change(Action.CREATE if stage not in local.config.get("stages", {}) else Action.UPDATE,
                              f"Chalice stage {stage}", "Lambda environment and policy file in .chalice/config.json",
                              (WriteFile(local.config_path, config_text(config)),)))
    digest = stage_digest(config, stage, policy, local.code_digest)
    if local.deployed_digest != digest:
        changes.append(Change(Action.RUN, f"chalice deploy --stage {stage}",
                              "the job manager's functions, their role and the S3 trigger", (
            Chalice(("deploy", "--stage", stage), local.project, blueprint.name, state.region),
            WriteFile(deployed_record, deployed_text(digest)))))
    return changes


def _override_notes(blueprint: Blueprint, shared: InitRecord) -> list[str]:
    settings, notes = blueprint.settings, []
    if settings.iam_role and settings.iam_role != shared.instance_profile:
        notes.append(f"IAM_ROLE {settings.iam_role} is replaced by {shared.instance_profile} (from neurocaas init).")
    if settings.security_groups and settings.security_groups != (shared.job_security_group,):
        notes.append(f"SECURITY_GROUPS {', '.join(settings.security_groups)} are replaced by the job security group "
                     f"{shared.job_security_group} (from neurocaas init).")
    if settings.key_name:
        notes.append(f"KEY_NAME {settings.key_name} is not used: job instances accept no inbound connection.")
    return notes


def plan_destroy(blueprint: Blueprint, state: AnalysisState, local: LocalState, deployed_record: Path,
                 delete_data: bool = False) -> Plan:
    """Everything ``neurocaas destroy`` removes; refuses while the analysis has instances running."""
    bucket, stage = blueprint.name, blueprint.name
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
    if local.policy_text is not None:
        changes.append(Change(Action.DELETE, f"job manager policy .chalice/{naming.policy_file(stage)}", "",
                              (WriteFile(local.policy_path(stage), None),)))
    changes += [_delete_group(g, "and its folder policy") for _, g in sorted(state.groups.items())]
    if state.budgets:
        changes.append(_delete_budgets(sorted(state.budgets), "budgets of this analysis"))
    if state.instance_policy is not None:
        changes.append(Change(Action.DELETE, f"instance role policy {naming.instance_policy_name(bucket)}", "", (
            Call("iam", "delete_role_policy", {"RoleName": naming.INSTANCE_ROLE,
                                               "PolicyName": naming.instance_policy_name(bucket)}),)))
    if state.bucket.exists and state.bucket.owned:
        if delete_data:
            changes.append(Change(Action.DELETE, f"S3 bucket {bucket}", "and ALL its data (--delete-data)", (
                EmptyBucket(bucket), Call("s3", "delete_bucket", {"Bucket": bucket}))))
        else:
            notes.append(f"The bucket {bucket} and its data are kept; pass --delete-data to delete them too.")
    return Plan(f"Destroy {bucket} in account {state.account}, {state.region}:", tuple(changes), tuple(notes))
