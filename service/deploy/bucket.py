"""The analysis bucket in a deployment plan: private, encrypted, and rid of unfinished uploads."""

from __future__ import annotations

from typing import Any

from chalicelib import awslimits
from chalicelib.blueprint import Blueprint
from service.deploy.awsstate import AnalysisState
from service.deploy.changes import Action, Call, Change


def bucket_changes(blueprint: Blueprint, state: AnalysisState) -> list[Change]:
    """Create the bucket private, encrypted and cleaning up unfinished uploads, or bring it there."""
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
        return [Change(Action.CREATE, target, "private (no ACLs), encrypted (SSE-S3), public access blocked, "
                       f"unfinished uploads removed after {awslimits.ABORT_UPLOADS_AFTER_DAYS} days",
                       (Call("s3", "create_bucket", create), block, encrypt, _lifecycle(bucket, ())))]
    fixes = [(state.bucket.public_access_blocked, "block all public access", block),
             (state.bucket.encrypted, "encrypt new objects (SSE-S3)", encrypt),
             (state.bucket.owner_enforced, "disable ACLs (bucket owner enforced)", owner)]
    changes = [Change(Action.UPDATE, target, what, (call,)) for done, what, call in fixes if not done]
    existing = state.bucket.lifecycle_rules
    if not any(rule.get("ID") == ABORT_UPLOADS_RULE for rule in existing):
        kept = f" (its {len(existing)} lifecycle rule(s) kept)" if existing else ""
        changes.append(Change(Action.UPDATE, target, f"remove unfinished uploads after "
                              f"{awslimits.ABORT_UPLOADS_AFTER_DAYS} days{kept}",
                              (_lifecycle(bucket, existing, state.bucket.transition_minimum_size),)))
    return changes


ABORT_UPLOADS_RULE = "neurocaas-abort-unfinished-uploads"


def _lifecycle(bucket: str, existing: tuple[dict[str, Any], ...], minimum_size: str | None = None) -> Call:
    """The bucket's lifecycle rules plus one that aborts multipart uploads nobody finished (a web
    upload abandoned half way), whose parts S3 otherwise keeps, and bills, for ever. The call
    replaces the whole configuration, so the bucket's own rules are carried over, with its
    transition minimum object size (left out, it would reset to S3's default)."""
    abort = {"ID": ABORT_UPLOADS_RULE, "Status": "Enabled", "Filter": {"Prefix": ""},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": awslimits.ABORT_UPLOADS_AFTER_DAYS}}
    params: dict[str, Any] = {"Bucket": bucket, "LifecycleConfiguration": {
        "Rules": [*(_with_filter(rule) for rule in existing), abort]}}
    if minimum_size:
        params["TransitionDefaultMinimumObjectSize"] = minimum_size
    return Call("s3", "put_bucket_lifecycle_configuration", params)


def _with_filter(rule: dict[str, Any]) -> dict[str, Any]:
    """A rule in the current form: an old rule's top-level ``Prefix`` becomes its ``Filter`` (S3
    does not take the two forms in one configuration); same keys, same effect."""
    if "Prefix" not in rule or "Filter" in rule:
        return rule
    converted = {k: v for k, v in rule.items() if k != "Prefix"}
    converted["Filter"] = {"Prefix": rule["Prefix"]}
    return converted
