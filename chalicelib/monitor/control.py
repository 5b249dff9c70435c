"""Stopping work: cancelling a job (CLI or a cancel file in S3) and reaping overdue instances."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from chalicelib.awsclient import AWSClient, ObjectMissing
from chalicelib.exceptions import SubmissionRefused
from chalicelib.paths import ObjectRef, group_of, job_name
from chalicelib.progress import FINAL, finish_dataset, rewrite
from chalicelib.records import DatasetState, JobRecord, JobState
from chalicelib.submission import JOB_ID

ENDED_JOB = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
REAPER_GRACE = timedelta(minutes=10)


class CannotCancel(SubmissionRefused):
    """The job does not exist or has already ended."""


def cancel_job(aws: AWSClient, bucket: str, prefix: str, now: datetime, by: str = "the user") -> int:
    """Terminate the job's instances and mark whatever had not finished CANCELLED.

    Returns how many instances were stopped; raises :class:`CannotCancel` with the reason.
    """
    try:
        record = JobRecord.model_validate_json(aws.get_object(ObjectRef(bucket, f"{prefix}/logs/job.json")).body)
    except ObjectMissing:
        raise CannotCancel(f"There is no job at s3://{bucket}/{prefix}/ to cancel.") from None
    if record.state in ENDED_JOB:
        raise CannotCancel(f"Job {record.job_id} has already ended ({record.state.value}).")
    job = prefix.rsplit("/", 1)[-1]
    instances = aws.find_instances({"analysis": record.analysis, "group": record.group, "job": job})
    aws.terminate([i.instance_id for i in instances])
    reason = f"Cancelled by {by}."
    for dataset in record.datasets.values():
        if dataset.instance_id and dataset.state not in FINAL:
            finish_dataset(aws.s3, f"s3://{bucket}/{prefix}", dataset.instance_id, DatasetState.CANCELLED, reason)

    def cancelled(body: bytes | None) -> bytes | None:
        if body is None:
            return None
        current = JobRecord.model_validate_json(body)
        if current.state in ENDED_JOB and current.state is not JobState.FAILED:
            return None
        current.state, current.reason, current.finished, current.updated = JobState.CANCELLED, reason, now, now
        return current.to_bytes()

    rewrite(aws.s3, bucket, f"{prefix}/logs/job.json", cancelled)
    return len(instances)


def cancel_from_s3(aws: AWSClient, bucket: str, key: str, now: datetime) -> int:
    """A cancel file ``{group}/submissions/{anything}cancel.json`` holding ``{"timestamp": JOB}``."""
    group = group_of(key)
    if group is None:
        raise CannotCancel(f"{key} is not inside a group's submissions/ folder.")
    try:
        document = json.loads(aws.get_object(ObjectRef(bucket, key)).body)
    except (ObjectMissing, ValueError):
        raise CannotCancel(f"{key} must be JSON like {{\"timestamp\": \"JOB ID\"}}.") from None
    job_id = str(document.get("timestamp", "")) if isinstance(document, dict) else ""
    if not JOB_ID.match(job_id):
        raise CannotCancel(f"{key} does not name a job: it needs {{\"timestamp\": \"JOB ID\"}}.")
    return cancel_job(aws, bucket, f"{group}/results/{job_name(bucket, job_id)}", now, by=f"the cancel file {key}")


def reap(aws: AWSClient, bucket: str, now: datetime, grace: timedelta = REAPER_GRACE) -> list[str]:
    """End every instance of the analysis that has outlived its ``Timeout`` tag plus ``grace``."""
    reaped = []
    for info in aws.find_instances({"analysis": bucket}, states=("pending", "running", "stopped")):
        try:
            lifetime = timedelta(minutes=float(info.tags.get("Timeout", "")))
        except ValueError:
            continue
        if info.launch_time is None or now < info.launch_time + lifetime + grace:
            continue
        aws.terminate([info.instance_id])
        if info.tags.get("jobfolder"):
            finish_dataset(aws.s3, info.tags["jobfolder"], info.instance_id, DatasetState.TIMED_OUT,
                           f"The instance outlived its lifetime of {lifetime.total_seconds() / 60:g} minutes and "
                           "was stopped. Set a longer __duration__ in the parameter file if it needs more time.")
        reaped.append(info.instance_id)
    return reaped
