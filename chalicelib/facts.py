"""Gathering what the planner needs from AWS: inputs that exist, the config, the budget state."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib import awslimits, pricing
from chalicelib.analysiscard import CARD_KEY, AnalysisCard
from chalicelib.awsclient import AWSClient, InstanceInfo, ObjectMissing
from chalicelib.blueprint import AnalysisSettings
from chalicelib.exceptions import AWSFailure, SettingsError, SubmissionRefused
from chalicelib.monitor.costs import ledger_key, spent_by
from chalicelib.monitor.legacy import neurocaas_spent
from chalicelib.parameters import parse_parameters
from chalicelib.paths import ObjectRef
from chalicelib.plan import BudgetState, InputFacts, VcpuHeadroom
from chalicelib.submission import Submission

S3_CONCURRENCY = 16  # per-dataset S3 requests are independent; at most the client's pool (awsclient.PARALLELISM)
BUDGET_PARAMETER = "/neurocaas/budgets/{group}/{bucket}"
# On-demand vCPU quotas by instance family (Service Quotas codes).
VCPU_QUOTAS = {"standard": "L-1216C47A", "p": "L-417A185B", "g": "L-DB2E81BA", "vt": "L-DB2E81BA",
               "f": "L-74FC7D96", "x": "L-7295265B", "inf": "L-1945791B"}


def quota_class(instance_type: str) -> str:
    """Which on-demand vCPU quota an instance type counts against."""
    letters = "".join(itertools.takewhile(str.isalpha, instance_type.split(".")[0]))
    for name in ("inf", "vt"):
        if letters.startswith(name):
            return name
    return letters[:1] if letters[:1] in ("p", "g", "f", "x") else "standard"


def _vcpu_headroom(aws: AWSClient, instance_type: str, quota: float,
                   account_instances: list[InstanceInfo]) -> VcpuHeadroom:
    """How much of the family's vCPU quota the account's pending and running instances use."""
    family = quota_class(instance_type)
    running = [i for i in account_instances
               if i.state in ("pending", "running") and quota_class(i.instance_type) == family]
    sizes = aws.vcpus([instance_type, *(i.instance_type for i in running)])
    in_use = sum(sizes.get(i.instance_type, 0) for i in running)
    return VcpuHeadroom(quota=quota, in_use=in_use, per_instance=sizes.get(instance_type, 1))


def _common_prefix(names: list[str]) -> str:
    first, last = min(names), max(names)
    size = next((i for i, (a, b) in enumerate(zip(first, last)) if a != b), min(len(first), len(last)))
    return first[:size]


def existing_inputs(aws: AWSClient, refs: list[ObjectRef]) -> frozenset[ObjectRef]:
    """Which of ``refs`` exist, by listing each folder they sit in (from the longest prefix their
    names share) rather than one HEAD per object: 1000 datasets in one folder cost one or two
    requests. A bucket that refuses listings (another owner's) is checked object by object."""
    folders: dict[tuple[str, str], list[ObjectRef]] = {}
    for ref in refs:
        parent = ref.key.rstrip("/").rpartition("/")[0]
        folders.setdefault((ref.bucket, parent + "/" if parent else ""), []).append(ref)
    found: set[ObjectRef] = set()
    for (bucket, folder), members in folders.items():
        names = [r.key[len(folder):].rstrip("/") for r in members]
        try:
            objects, subfolders = aws.list_objects(bucket, folder + _common_prefix(names), delimiter="/")
        except AWSFailure as error:
            if error.code not in ("AccessDenied", "AllAccessDisabled"):
                raise
            with ThreadPoolExecutor(max_workers=S3_CONCURRENCY) as pool:
                found.update(r for r, ok in zip(members, pool.map(aws.exists, members)) if ok)
            continue
        present = {o.key for o in objects} | set(subfolders)
        found.update(r for r in members if r.key in present)
    return frozenset(found)


def gather_inputs(aws: AWSClient, settings: AnalysisSettings, submission: Submission) -> InputFacts:
    """Which submitted objects exist, the parameter file's body, and the image's root disk."""
    existing = existing_inputs(aws, sorted(set(submission.datasets), key=lambda r: (r.bucket, r.key)))
    try:
        config_body: bytes | None = aws.get_object(submission.config).body
    except ObjectMissing:
        config_body = None
    # The image is only looked up when the parameter file asks for a bigger disk.
    image_root = None
    if config_body is not None and b"__dataset_size__" in config_body:
        try:
            wants_disk = parse_parameters(submission.config.key, config_body).dataset_size_gb is not None
        except SubmissionRefused:
            wants_disk = False  # the planner refuses it with the reason
        if wants_disk:
            image_root = aws.image_root(settings.ami)
    return InputFacts(existing=existing, config_body=config_body, image_root=image_root,
                      parameter_schema=parameter_schema(aws, settings.bucket_name))


def parameter_schema(aws: AWSClient, bucket: str) -> dict[str, Any] | None:
    """The parameters the analysis declares (in its card), or None when it declares none."""
    try:
        card = AnalysisCard.from_bytes(aws.get_object(ObjectRef(bucket, CARD_KEY)).body)
    except ObjectMissing:
        return None
    return card.parameters if card else None


def _dollars(value: object) -> float:
    try:
        return max(float(value), 0.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def gather_budget(aws: AWSClient, settings: AnalysisSettings, group: str, instance_type: str = "") -> BudgetState:
    """The group's limit and spending, and how many instances the analysis runs now."""
    parameter = BUDGET_PARAMETER.format(group=group, bucket=settings.bucket_name)
    configured = aws.get_parameter(parameter)
    if configured is not None:
        try:
            limit, source = float(configured), f"SSM parameter {parameter}"
        except ValueError:
            raise SettingsError(
                f"The budget in SSM parameter {parameter} is {configured!r}, not a number of dollars. "
                "Ask the analysis developer to correct it."
            ) from None
    elif settings.maxcost is not None:
        limit, source = settings.maxcost, "the analysis's MAXCOST"
    else:
        limit, source = None, "no budget set"
    # One listing serves both the analysis's load and, when the quota can be read, the account's.
    quota = aws.vcpu_quota(VCPU_QUOTAS[quota_class(instance_type)]) if instance_type else None
    live = aws.find_instances({} if quota is not None else {"analysis": settings.bucket_name})
    running = [i for i in live if i.tags.get("analysis") == settings.bucket_name]
    running_cost = sum(
        pricing.estimate(i.instance_type, 1, _dollars(i.tags.get("Timeout", settings.default_duration)))
        for i in running if i.tags.get("group") == awslimits.tag_value(group)
    )
    spent = 0.0
    if limit is not None:
        try:
            spent = spent_by(aws.get_object(ObjectRef(settings.bucket_name, ledger_key(group))).body)
        except (ObjectMissing, ValueError, KeyError):
            spent = 0.0
        spent += neurocaas_spent(aws, settings.bucket_name, group)
    return BudgetState(limit=limit, limit_source=source, spent=round(spent, 4),
                       running_cost=round(running_cost, 4), running_instances=len(running),
                       vcpus=_vcpu_headroom(aws, instance_type, quota, live) if quota is not None else None)
