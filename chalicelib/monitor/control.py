"""Stopping and repairing work: cancelling a job (CLI or a cancel file) and the scheduled reaper.

The reaper is what makes the job record hold when events are lost: it resumes submissions whose
handler died, records the end of instances EC2 reports ended (or no longer lists), reconciles
every open job in full, and ends instances that outlived their lifetime.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.awsclient import AWSClient, InstanceInfo, ObjectMissing, PreconditionFailed
from chalicelib.exceptions import SubmissionRefused
from chalicelib.jobstate.markers import OpenJob, OpenJobs, ended_instances
from chalicelib.jobstate.reconcile import ENDED_JOB, Reconciler, RelaunchHook
from chalicelib.jobstate.errors import NoJobRecord
from chalicelib.jobstate.statusfile import finish_from_outside, finish_instance_dataset, load_record
from chalicelib.monitor.statechange import close_instance, end_hook, settle_hook
from chalicelib.paths import ObjectRef, group_of, job_name
from chalicelib.records import DatasetState, JobRecord, JobState
from chalicelib.submission import JOB_ID

REAPER_GRACE = timedelta(minutes=10)
# DescribeInstances is eventually consistent: a just-launched instance may not be listed yet.
VISIBILITY_GRACE = timedelta(minutes=5)
ALL_STATES = ("pending", "running", "shutting-down", "terminated", "stopping", "stopped")
WRITE_CONCURRENCY = 16


class CannotCancel(SubmissionRefused):
    """The job does not exist or has already ended."""


def _marker(record: JobRecord, bucket: str, prefix: str) -> OpenJob:
    return OpenJob.for_record(record, f"s3://{bucket}/{prefix}", record.started)


def cancel_job(aws: AWSClient, bucket: str, prefix: str, now: datetime, by: str = "the user",
               logger: Any = None) -> int:
    """Cancel a job: ``cancel.json``, its instances terminated, unfinished datasets CANCELLED, and
    the job ended (CANCELLED, exactly once) by the reconciler. Returns how many instances it had;
    raises :class:`CannotCancel` with the reason."""
    try:
        record = load_record(aws, bucket, prefix)
    except NoJobRecord as error:
        raise CannotCancel(f"{error.message} Nothing to cancel.") from None
    if record.state in ENDED_JOB:
        raise CannotCancel(f"Job {record.job_id} has already ended ({record.state.value}).")
    try:
        aws.put(bucket, f"{prefix}/logs/cancel.json", json.dumps({"by": by, "at": now.isoformat()}).encode(),
                "application/json", if_none_match=True)
    except PreconditionFailed:
        pass  # cancelled before: finish what that cancel may not have
    aws.terminate(record.instance_ids)
    reason = f"Cancelled by {by}."
    marker = _marker(record, bucket, prefix)

    def stop(dataset_and_instance: tuple[Any, str | None]) -> None:
        dataset, instance_id = dataset_and_instance
        if dataset is not None:
            finish_from_outside(aws, bucket, dataset.status_key, DatasetState.CANCELLED, reason,
                                input_key=dataset.input, instance=dataset.instance_id, at=now,
                                earlier=dataset.earlier_instances)
        if instance_id is not None:
            close_instance(aws, record.analysis, marker, instance_id, now, "terminated by a cancel")

    work = [(d, None) for d in record.datasets.values()] + [(None, i) for i in record.instance_ids]
    with ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY) as pool:
        list(pool.map(stop, work))
    Reconciler(aws, lambda: now, end_hook(aws, logger)).reconcile(marker.folder, refresh=True)
    return len(record.instance_ids)


def cancel_requested(aws: AWSClient, bucket: str, prefix: str) -> str | None:
    """Who cancelled the job, if its folder holds ``cancel.json`` (a cancel of a QUEUED job can
    leave nothing else: there is no instance to stop yet)."""
    try:
        body = aws.get_object(ObjectRef(bucket, f"{prefix}/logs/cancel.json")).body
    except ObjectMissing:
        return None
    try:
        return str(json.loads(body).get("by") or "the user")
    except (ValueError, AttributeError):
        return "the user"


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


@dataclass
class ReapReport:
    """What one reaper pass did (for logs and tests)."""

    overdue: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)


def _lifetime(info: InstanceInfo) -> timedelta | None:
    try:
        return timedelta(minutes=float(info.tags.get("Timeout", "")))
    except ValueError:
        return None


def reap(aws: AWSClient, bucket: str, now: datetime, *, resume: Callable[[str], object] | None = None,
         logger: Any = None, postprocess: str = "", grace: timedelta = REAPER_GRACE,
         open_jobs: OpenJobs | None = None, relaunch: RelaunchHook | None = None) -> ReapReport:
    """One pass of the reaper over analysis ``bucket`` (one DescribeInstances listing)."""
    report = ReapReport()
    listed = {i.instance_id: i for i in aws.find_instances({"analysis": bucket}, states=ALL_STATES)}
    open_jobs = open_jobs or OpenJobs()
    jobs = open_jobs.load(aws, bucket)
    for info in listed.values():
        lifetime = _lifetime(info)
        if (info.state in ("pending", "running", "stopped") and lifetime is not None
                and info.launch_time is not None and now >= info.launch_time + lifetime + grace):
            report.overdue.append(info.instance_id)
    if report.overdue:
        # TIMED OUT first: an instance ended without a final report would be relaunched.
        _time_out(aws, bucket, report.overdue, listed, now, open_jobs)
        aws.terminate(report.overdue)
    reconciler = Reconciler(aws, lambda: now, end_hook(aws, logger, postprocess), relaunch,
                            settle_hook(aws, logger, postprocess))
    for job in jobs:
        try:
            _reap_job(aws, bucket, job, listed, now, reconciler, resume, report)
        except Exception:  # one broken job must not stop the pass for the others
            if logger is not None:
                logger.exception("reaper: could not reconcile a job", extra={"job": job.folder})
    return report


def _reap_job(aws: AWSClient, bucket: str, job: OpenJob, listed: dict[str, InstanceInfo], now: datetime,
              reconciler: Reconciler, resume: Callable[[str], object] | None, report: ReapReport) -> None:
    """Record the ends EC2 shows (or forgot) for one open job, reconcile it, resume it if stale."""
    job_bucket, job_prefix = job.location
    if job.instance_ids:
        ended = ended_instances(aws, job_bucket, job_prefix)
        gone = [i for i in job.instance_ids if i not in ended and _gone(listed.get(i), job, now)]

        def close(instance_id: str) -> bool:
            how = "no longer listed by EC2" if instance_id not in listed else "found ended by the reaper"
            return close_instance(aws, bucket, job, instance_id, now, how)

        with ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY) as pool:
            report.ended += [i for i, closed in zip(gone, pool.map(close, gone)) if closed]
    outcome = reconciler.reconcile(job.folder, refresh=True)
    report.jobs[job.job] = outcome.detail
    if outcome.cancelled_by and outcome.state is JobState.RUNNING:
        # cancel.json, yet instances still run: a cancel that raced the job's launch
        cancel_job(aws, job_bucket, job_prefix, now, by=outcome.cancelled_by)
        report.jobs[job.job] = f"cancelled by {outcome.cancelled_by}: stopped what the launch started"
    record = outcome.record
    if (outcome.state is JobState.QUEUED and record is not None and resume is not None
            and (record.lease_expires is None or record.lease_expires <= now)):
        resume(job.submit_key)
        report.resumed.append(job.job)


def _gone(info: InstanceInfo | None, job: OpenJob, now: datetime) -> bool:
    """Whether EC2 says the instance has ended (or, past the listing's lag, forgot it)."""
    if info is None:
        return job.launched is not None and now - job.launched > VISIBILITY_GRACE
    return info.state in ("stopped", "terminated")


def _time_out(aws: AWSClient, bucket: str, overdue: list[str], listed: dict[str, InstanceInfo], now: datetime,
              open_jobs: OpenJobs) -> None:
    """The datasets of instances ended for outliving their lifetime are TIMED OUT."""
    for instance_id in overdue:
        lifetime = _lifetime(listed[instance_id])
        minutes = lifetime.total_seconds() / 60 if lifetime else 0
        finish_instance_dataset(
            aws, bucket, instance_id, DatasetState.TIMED_OUT,
            f"The instance outlived its lifetime of {minutes:g} minutes and was stopped. "
            "Set a longer __duration__ in the parameter file if it needs more time.", now, open_jobs)
