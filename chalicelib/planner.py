"""Planning a job: (settings, submission, facts, budget) -> JobPlan, or a refusal. Pure."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from chalicelib import awslimits, bootscript, pricing
from chalicelib.analysiscard import check_concurrency
from chalicelib.blueprint import AnalysisSettings
from chalicelib.exceptions import BudgetExceeded, SubmissionRefused
from chalicelib.parameters import Parameters, parse_parameters
from chalicelib.paths import ObjectRef
from chalicelib.plan import (
    BudgetState,
    DatasetPlan,
    InputFacts,
    JobPlan,
    LaunchBatch,
    RootVolume,
)
from chalicelib.submission import Submission

MAX_LISTED = 5


def plan_job(
    settings: AnalysisSettings,
    submission: Submission,
    submit_etag: str,
    facts: InputFacts,
    budget: BudgetState,
) -> JobPlan:
    """Decide everything about a job, or raise a :class:`SubmissionRefused` naming the problem."""
    _check_inputs_exist(submission, facts)
    assert facts.config_body is not None
    parameters = parse_parameters(submission.config.key, facts.config_body, facts.parameter_schema)
    lifetime = lifetime_minutes(settings, parameters)
    root_volume = _root_volume(parameters, facts)
    work = _dataset_work(submission, parameters)
    on_demand = pricing.estimate(submission.instance_type, len(work), lifetime)
    spot = settings.spot != "never"
    estimated = pricing.estimate(submission.instance_type, len(work), lifetime, spot=spot)
    notes = []
    if not pricing.hourly_price(submission.instance_type).known:
        notes.append(f"{submission.instance_type} is not in the price table; estimated at the highest listed price")
    if spot:
        notes.append(f"Spot capacity ({settings.spot}): estimated {money(estimated)} at Spot prices, "
                     f"{money(on_demand)} on-demand")
    # A job that may fall back to on-demand is held to the budget at on-demand prices.
    check_budget(settings, submission.group, submission.instance_type, budget,
                 estimated if settings.spot == "only" else on_demand, len(work))
    job = submission.location.prefix.rsplit("/", 1)[-1]
    tags = {name: awslimits.tag_value(value) for name, value in {
        "Name": f"neurocaas-{settings.bucket_name}-{submission.job_id}",
        "PriceTracking": "On",
        "Timeout": str(lifetime),
        "group": submission.group,
        "analysis": settings.bucket_name,
        "job": job,
    }.items()}
    batches, datasets = _batches(settings, submission, submit_etag, work, lifetime, job)
    return JobPlan(
        submission=submission, submit_etag=submit_etag, analysis=settings.bucket_name,
        ami=settings.ami, instance_type=submission.instance_type, lifetime_minutes=lifetime,
        datasets=datasets, batches=batches, tags=tags, estimated_cost=estimated,
        iam_role=settings.iam_role, key_name=settings.key_name,
        security_groups=settings.security_groups, root_volume=root_volume, notes=tuple(notes),
        fallback_instance_types=settings.fallback_instance_types, spot=settings.spot,
        on_demand_cost=on_demand if spot else None,
    )


def lifetime_minutes(settings: AnalysisSettings, parameters: Parameters) -> int:
    """How long each instance of a job may run: ``__duration__``, else the analysis default."""
    return math.ceil(parameters.duration_minutes or settings.default_duration)


def estimated_cost(settings: AnalysisSettings, instance_type: str, datasets: int, parameters: Parameters) -> float:
    """The estimate a job of ``datasets`` datasets is planned (and budgeted) with."""
    instances = datasets * (parameters.ensemble_size or 1)
    return pricing.estimate(instance_type, instances, lifetime_minutes(settings, parameters))


def _check_inputs_exist(submission: Submission, facts: InputFacts) -> None:
    missing = [ref for ref in submission.datasets if ref not in facts.existing]
    if missing:
        shown = ", ".join(_shown(ref, submission) for ref in missing[:MAX_LISTED])
        more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
        raise SubmissionRefused(
            f"Dataset(s) not found: {shown}{more}. Upload them (or correct `dataname`) and submit again."
        )
    if facts.config_body is None:
        raise SubmissionRefused(
            f"Parameter file not found: {_shown(submission.config, submission)}. Upload it (or correct `configname`) "
            "and submit again."
        )


def _shown(ref: ObjectRef, submission: Submission) -> str:
    """A key as the user wrote it: plain in the analysis bucket, else as an s3:// URI."""
    return ref.argument(submission.analysis_bucket)


def money(dollars: float) -> str:
    """Dollars as a user reads them: cents, or more digits for amounts under a dollar."""
    return f"${dollars:.2f}" if dollars >= 1 or dollars == 0 else f"${dollars:.4f}"


def _root_volume(parameters: Parameters, facts: InputFacts) -> RootVolume | None:
    if not parameters.dataset_size_gb:
        return None
    root = facts.image_root or RootVolume("/dev/sda1", 8)
    return RootVolume(root.device_name, root.size_gb + math.ceil(parameters.dataset_size_gb))


def _dataset_work(submission: Submission, parameters: Parameters) -> list[tuple[str, ObjectRef, ObjectRef, int | None, bytes | None]]:
    """(label, input, config, member, config copy) for each instance to launch."""
    members = parameters.ensemble_size or 1
    if members == 1:
        return [(ref.basename, ref, submission.config, None, None) for ref in submission.datasets]
    if len(submission.datasets) != 1:
        raise SubmissionRefused(
            f"`ensemble_size` runs one dataset {members} times, but `dataname` lists "
            f"{len(submission.datasets)} datasets. Submit one dataset per ensemble job."
        )
    dataset = submission.datasets[0]
    location = submission.location
    config_name = submission.config.basename
    return [
        (
            f"{dataset.basename}-member{j}",
            dataset,
            ObjectRef(location.bucket, location.key("configs", f"member{j}_{config_name}")),
            j,
            parameters.with_member(j),
        )
        for j in range(1, members + 1)
    ]


def check_budget(settings: AnalysisSettings, group: str, instance_type: str, budget: BudgetState,
                 estimated: float, instances: int) -> None:
    """Refuse work that would run more instances than allowed, exceed the vCPU quota or the budget."""
    check_concurrency(settings.deploy_limit, budget.running_instances, instances)
    headroom = budget.vcpus
    if headroom is not None and headroom.in_use + instances * headroom.per_instance > headroom.quota:
        room = max(int((headroom.quota - headroom.in_use) // max(headroom.per_instance, 1)), 0)
        raise BudgetExceeded(
            f"The account's vCPU quota for {instance_type} ({headroom.quota:g} vCPUs, "
            f"{headroom.in_use} in use) leaves room for {room} more instance(s); this job needs {instances}. "
            "Submit fewer datasets or try again later; the analysis developer can ask AWS to raise the quota."
        )
    if budget.limit is None:
        return
    total = budget.spent + budget.running_cost + estimated
    if total > budget.limit:
        raise BudgetExceeded(
            f"Group {group!r} has a budget of {money(budget.limit)} ({budget.limit_source}); "
            f"spent {money(budget.spent)}, running jobs {money(budget.running_cost)}, this job an estimated "
            f"{money(estimated)}. Shorten `__duration__`, submit fewer datasets, or ask the analysis "
            "developer to raise the budget."
        )


def client_token(submission: Submission, submit_etag: str, batch: int) -> str:
    """The idempotency token of one launch request: the same submission gets the same token."""
    seed = f"{submission.location.bucket}/{submission.location.prefix}|{submit_etag}|{batch}"
    return hashlib.sha256(seed.encode()).hexdigest()[:64]


def _batches(
    settings: AnalysisSettings, submission: Submission, submit_etag: str,
    work: Sequence[tuple[str, ObjectRef, ObjectRef, int | None, bytes | None]],
    lifetime: int, job: str,
) -> tuple[tuple[LaunchBatch, ...], tuple[DatasetPlan, ...]]:
    """Split the work into as few launch requests as the user-data size limit allows."""
    home = settings.bucket_name
    location = submission.location
    rows = [(inp.argument(home), cfg.argument(home), label) for label, inp, cfg, _, _ in work]

    def script(chunk: Sequence[tuple[str, str, str]]) -> str:
        return bootscript.render(
            command=settings.command, bucket=home, result_argument=location.result_argument,
            rows=chunk, lifetime_minutes=lifetime, job=job,
            log_uri=f"s3://{location.bucket}/{location.ec2_logs}", status_key=location.status,
        )

    chunks: list[tuple[int, int]] = []
    pending = [(0, len(rows))]
    while pending:
        start, end = pending.pop(0)
        if len(script(rows[start:end]).encode()) <= bootscript.USER_DATA_LIMIT or end - start == 1:
            chunks.append((start, end))
        else:
            middle = (start + end) // 2
            pending[:0] = [(start, middle), (middle, end)]
    batches, datasets = [], []
    for number, (start, end) in enumerate(chunks):
        batches.append(LaunchBatch(
            number=number, instance_type=submission.instance_type, count=end - start,
            user_data=script(rows[start:end]), client_token=client_token(submission, submit_etag, number),
        ))
        for offset, (label, inp, cfg, member, body) in enumerate(work[start:end]):
            datasets.append(DatasetPlan(
                label=label, input=inp, config=cfg, status_key=location.status(label),
                batch=number, launch_index=offset, member=member, config_body=body,
            ))
    return tuple(batches), tuple(datasets)
